import Foundation
import Testing

/// Settings from the commune as the real binaries do it on a box (issue 24, item 7): `commune
/// settings send` keeps a revision, the recording daemon's heartbeat hands it on, `junction
/// settings apply` restarts the daemon with it (here through a script in place of systemctl)
/// and keeps it once the new recorder has recorded and reached the commune. A camera address
/// that records nothing is rolled back at the deadline and the daemon records again with the
/// settings before; the commune learns both outcomes.
@Suite(.serialized, .timeLimit(.minutes(6)))
struct SettingsCLITests {
    static var commune: String { UploadTests.commune }

    func waitFor(_ seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
        guard try Rig.wait(seconds: seconds, every: 0.25, condition) else { throw RigError("timed out waiting for \(what)") }
    }

    func status(_ config: String) -> (pid: Int, segments: Int)? {
        let path = (config as NSString).deletingLastPathComponent + "/data/status.json"
        guard let d = FileManager.default.contents(atPath: path), let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
              let pid = j["pid"] as? Int, let n = j["segments_written"] as? Int else { return nil }
        return (pid, n)
    }

    func sent(_ data: String) throws -> [[String: Any]] {
        let r = try Rig.run(Self.commune, ["settings", "list", "it-box", "--data", data, "--json"])
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return j?["revisions"] as? [[String: Any]] ?? []
    }

    /// At boot, settle files what a power cut left: a check of an earlier boot rolled back, and
    /// a change laid over a junction.toml the installer has edited since superseded.
    @Test func settleFilesACheckCutShortAndTheCardsEdit() throws {
        let dir = Rig.tempDir("settings-settle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try writeConfig(dir: dir, cameraURL: "rtsp://127.0.0.1:1/cam")
        try FileManager.default.createDirectory(atPath: dir + "/data/update", withIntermediateDirectories: true)
        let state = dir + "/data/update/settings.json"
        try #"{"in_force":{"revision":1,"toml":"[upload]\nmax_kbps = 1\n","base_sha256":"0000","at":"2026-12-07T10:00:00Z"},"#
            .appending(#""trial":{"boot_id":"an-earlier-boot","settings":{"revision":2,"toml":"[log]\nlevel = \"debug\"\n","base_sha256":"0000","at":"2026-12-07T10:00:00Z"}},"seen":2}"#)
            .write(toFile: state, atomically: true, encoding: .utf8)
        let r = try Rig.junction(["update", "settle", "--config", config, "--cmdline", "quiet"])
        #expect(r.status == 0 && r.stdout.contains("Settings: the box restarted before revision 2 had recorded"), "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("Settings: junction.toml on the card was edited after revision 1"), "\(r.stdout)")
        let after = try String(contentsOfFile: state, encoding: .utf8)
        #expect(!after.contains("\"trial\"") && !after.contains("\"in_force\"") && after.contains("superseded"), "\(after)")
        let status = try Rig.junction(["settings", "status", "--config", config])
        #expect(status.stdout.contains("alone") && status.stdout.contains("revision 1 superseded"), "\(status.stdout)")
    }

    @Test func aChangeIsKeptOnceItRecordsAndOneThatStopsRecordingIsRolledBack() throws {
        let camera = Camera(clip: try Rig.clip(seconds: 30))
        try camera.start()
        defer { camera.stop() }
        let commune = try UplinkFaultTests.Commune()
        defer { commune.server.stop() }
        let dir = Rig.tempDir("settings-box")
        // Removed last, after the daemon is stopped by the pid in it (defers run in reverse).
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2, extra: """
            [server]
            url = "http://127.0.0.1:\(commune.port)"
            token = "\(commune.token)"
            allow_insecure_http = true
            heartbeat_seconds = 5
            [update]
            health_segments = 2
            health_deadline_seconds = 60
            """)
        // What systemctl restart junction.service does on a box: stop the daemon, start it again.
        let pidFile = dir + "/daemon.pid", log = dir + "/daemon.log", script = dir + "/restart.sh"
        try """
            pid=$(cat '\(pidFile)' 2>/dev/null)
            if [ -n "$pid" ]; then kill "$pid"; i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; fi
            # The daemon holds none of its starter's descriptors (Foundation's Process waits for
            # one of its own to close), in a session of its own.
            python3 -c 'import os, sys; os.closerange(3, 65536); os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
              '\(Rig.junction)' run --config '\(config)' >> '\(log)' 2>&1 < /dev/null &
            echo $! > '\(pidFile)'
            """.write(toFile: script, atomically: true, encoding: .utf8)
        func daemonPID() -> Int32? { (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        defer {
            if let pid = daemonPID() {
                kill(pid, SIGTERM)
                if !Rig.wait(seconds: 15, { kill(pid, 0) != 0 }) { kill(pid, SIGKILL) }
            }
        }
        _ = try Rig.run("/bin/sh", [script])
        try waitFor(40, "the first recording") { (status(config)?.segments ?? 0) >= 1 }
        let offer = dir + "/data/settings-offer.json"

        // 1. A change that records: kept.
        try "[upload]\nmax_kbps = 4000\n".write(toFile: dir + "/cap.toml", atomically: true, encoding: .utf8)
        let send = try Rig.run(Self.commune, ["settings", "send", "it-box", dir + "/cap.toml", "--data", commune.data, "--by", "chief"])
        #expect(send.status == 0 && send.stdout.contains("Revision 1"), "\(send.stdout)\(send.stderr)")
        try waitFor(30, "the daemon to hand revision 1 on") { FileManager.default.fileExists(atPath: offer) }
        let before = daemonPID()
        let apply = try Rig.run(Rig.junction, ["settings", "apply", "--config", config, "--restart", "/bin/sh \(script)", "--poll", "1"], timeout: 150)
        #expect(apply.status == 0 && apply.stdout.contains("Revision 1 applied and kept"), "\(apply.stdout)\(apply.stderr)")
        #expect(daemonPID() != before, "the daemon was restarted with the change")
        #expect(!FileManager.default.fileExists(atPath: offer))
        let shown = try Rig.junction(["settings", "status", "--config", config])
        #expect(shown.stdout.contains("revision 1 over it") && shown.stdout.contains("max_kbps = 4000"), "\(shown.stdout)")
        let st = try Rig.junction(["status", "--config", config])
        #expect(st.stdout.contains("Settings ") && st.stdout.contains("revision 1"), "\(st.stdout)")
        try waitFor(30, "the commune to learn revision 1 was applied") { try sent(commune.data).first?["result"] as? String == "applied" }

        // 2. A camera address that records nothing: rolled back at the deadline, and the box
        // records again with what it had.
        try "[camera]\nurl = \"rtsp://127.0.0.1:1/nothing\"\n".write(toFile: dir + "/cam.toml", atomically: true, encoding: .utf8)
        #expect(try Rig.run(Self.commune, ["settings", "send", "it-box", dir + "/cam.toml", "--data", commune.data]).status == 0)
        try waitFor(30, "the daemon to hand revision 2 on") { FileManager.default.fileExists(atPath: offer) }
        let bad = try Rig.run(Rig.junction, ["settings", "apply", "--config", config, "--restart", "/bin/sh \(script)", "--poll", "1"], timeout: 150)
        #expect(bad.status == 0 && bad.stdout.contains("Revision 2 rolled back") && bad.stdout.contains("recorded 0 of 2 segments"), "\(bad.stdout)\(bad.stderr)")
        let backPID = status(config)?.pid
        try waitFor(40, "recording again with the previous settings") {
            guard let s = status(config) else { return false }
            return s.pid != backPID || s.segments >= 1
        }
        try waitFor(40, "segments from the restored settings") { (status(config)?.segments ?? 0) >= 1 && status(config)?.pid == Int(daemonPID() ?? 0) }
        let after = try Rig.junction(["settings", "status", "--config", config])
        #expect(after.stdout.contains("revision 1 over it") && after.stdout.contains("revision 2 rolled back"), "\(after.stdout)")
        let doctor = try Rig.junction(["doctor", "--config", config])
        #expect(doctor.stdout.contains("settings") && doctor.stdout.contains("revision 2 rolled back"), "\(doctor.stdout)")
        try waitFor(30, "the commune to learn revision 2 was rolled back") { try sent(commune.data).first?["result"] as? String == "rolled_back" }
        let listed = try Rig.run(Self.commune, ["settings", "list", "it-box", "--data", commune.data])
        #expect(listed.stdout.contains("In force on it-box: revision 1") && listed.stdout.contains("rolled back"), "\(listed.stdout)")
    }
}
