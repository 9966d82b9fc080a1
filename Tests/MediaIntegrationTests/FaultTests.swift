import Foundation
import Testing

/// Bad cameras and bad cards: one clear line in the log, a status that says what is wrong and
/// what to do, nothing recorded lost.
@Suite(.timeLimit(.minutes(5)))
struct FaultTests {
    func health(_ config: String) -> [String: Any] {
        ((try? statusJSON(config))?["health"] as? [String: Any]) ?? [:]
    }

    func runUntilError(_ config: String, code: String) throws -> (status: [String: Any], log: String) {
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        _ = Rig.wait(seconds: 20) { (health(config)["last_error_code"] as? String) == code }
        let status = try statusJSON(config)
        return (status, daemon.output)
    }

    @Test func unreachableCamera() throws {
        let dir = Rig.tempDir("unreachable")
        let config = try writeConfig(dir: dir, cameraURL: "rtsp://127.0.0.1:\(Rig.freePort())/cam")
        let (status, log) = try runUntilError(config, code: "unavailable")
        #expect(status["recording"] as? Bool == false)
        #expect((status["health"] as? [String: Any])?["last_error_code"] as? String == "unavailable")
        #expect((status["advice"] as? String)?.contains("camera") == true)
        #expect(log.contains("cannot be reached"))
        let human = try Rig.junction(["status", "--config", config])
        #expect(human.status == 1)
    }

    @Test func wrongCredentials() throws {
        let camera = Camera(clip: try Rig.clip(), extra: ["--user", "admin", "--password", "right"])
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("auth")
        let config = try writeConfig(dir: dir, cameraURL: "rtsp://admin:wrong@127.0.0.1:\(camera.port)/cam")
        let (status, log) = try runUntilError(config, code: "unauthenticated")
        #expect((status["advice"] as? String)?.contains("password") == true, "\(status)")
        #expect(!log.contains("wrong"), "the password never reaches the log")
        // The right password records.
        let good = try writeConfig(dir: Rig.tempDir("auth-ok"), cameraURL: "rtsp://admin:right@127.0.0.1:\(camera.port)/cam", segmentSeconds: 2)
        let daemon = Daemon(config: good)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 20) { ((try? listSegments(good)) ?? []).count >= 1 }, "\(daemon.output)")
    }

    @Test func g711AudioIsDroppedAndSaid() throws {
        let clip = try Rig.clip(bitrate: "500k", size: "320x240", seconds: 6, audio: "pcma")
        let dir = Rig.tempDir("g711")
        let config = try writeConfig(dir: dir, cameraURL: "file://" + clip, segmentSeconds: 2)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 20) { ((try? listSegments(config)) ?? []).count >= 1 }, "\(daemon.output)")
        #expect(Rig.wait(seconds: 10) { health(config)["stream"] != nil })
        let stream = health(config)["stream"] as? [String: Any] ?? [:]
        #expect(stream["audio_kept"] as? Bool == false, "\(stream)")
        #expect((stream["audio_note"] as? String ?? "").contains("dropped"))
        let human = try Rig.junction(["status", "--config", config])
        #expect(human.stdout.contains("pcm_alaw audio cannot be stored"), "\(human.stdout)")
        let s = try listSegments(config)[0]
        let streams = try Rig.ffprobe(["-show_entries", "stream=codec_type", "-of", "csv=p=0", s.path])
        #expect(streams.trimmingCharacters(in: .whitespacesAndNewlines) == "video")
    }

    @Test func streamWithoutVideo() throws {
        let dir = Rig.tempDir("novideo")
        let audioOnly = dir + "/audio.m4a"
        try Rig.run("/usr/bin/ffmpeg", ["-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3", "-c:a", "aac", audioOnly])
        let config = try writeConfig(dir: dir, cameraURL: "file://" + audioOnly)
        let (status, _) = try runUntilError(config, code: "noVideo")
        #expect((status["problem"] as? String)?.contains("no video") == true, "\(status)")
    }

    @Test func readOnlyDataDirectory() throws {
        let dir = Rig.tempDir("readonly")
        let mount = dir + "/data"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let m = try Rig.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mount])
        try #require(m.status == 0, "mounting a tmpfs needs root: \(m.stderr)")
        defer { _ = try? Rig.run("/usr/bin/umount", [mount]) }
        let config = try writeConfig(dir: dir, cameraURL: "rtsp://127.0.0.1:1/cam")
        let r = try Rig.junction(["run", "--config", config])
        #expect(r.status != 0)
        let text = r.stdout + r.stderr
        #expect(text.contains(mount) && text.contains("Read-only file system") && text.contains("writable"), "\(text)")
    }

    /// A card filled three times over: recording goes on, the ring stays within its budget.
    @Test func smallCardFilledThreeTimes() throws {
        let clip = try Rig.clip(bitrate: "6M", size: "1280x720", seconds: 20)
        let camera = Camera(clip: clip)
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("full")
        let mount = dir + "/data"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        // 8 MiB: three fills of it at 6 Mbit/s take ~32 s.
        let m = try Rig.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mount])
        try #require(m.status == 0, "mounting a tmpfs needs root: \(m.stderr)")
        defer { _ = try? Rig.run("/usr/bin/umount", ["-l", mount]) }
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2,
                                     storageExtra: "max_percent = 90\nreserve_bytes = \"1MB\"")
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        let capacity = 8.0 * 1024 * 1024
        var written = 0.0
        var worstUsage = 0.0
        var samples = 0
        _ = Rig.wait(seconds: 150, every: 1) {
            if let io = try? String(contentsOfFile: "/proc/\(daemon.pid)/io", encoding: .utf8),
               let line = io.split(separator: "\n").first(where: { $0.hasPrefix("wchar:") }) {
                written = Double(line.split(separator: " ")[1]) ?? 0
            }
            var st = statvfs()
            if statvfs(mount, &st) == 0 {
                let used = Double(st.f_blocks - st.f_bfree) * Double(st.f_frsize)
                worstUsage = max(worstUsage, used)
                samples += 1
            }
            return written >= 3 * capacity
        }
        #expect(written >= 3 * capacity, "wrote \(written) bytes: \(daemon.output.suffix(2000))")
        #expect(worstUsage <= capacity - 1_000_000 + 64 * 1024, "the reserve was eaten: \(worstUsage) bytes used")
        let status = try statusJSON(config)
        #expect(status["recording"] as? Bool == true, "\(status)")
        #expect((status["gaps_last_24h"] as? [Any])?.isEmpty == true, "recording must be continuous: \(status)")
        let usage = status["usage"] as? [String: Any] ?? [:]
        let ring = usage["ring_bytes"] as? Double ?? 0, budget = usage["budget_bytes"] as? Double ?? 0
        #expect(ring > 0 && ring <= budget, "\(usage)")
        daemon.stop()
        let check = try Rig.junction(["check", "--config", config])
        #expect(check.status == 0, "\(check.stdout)")
        let segments = try listSegments(config)
        let span = parseTime(segments.last!.end) - parseTime(segments.first!.start)
        let covered = segments.reduce(0.0) { $0 + $1.duration_seconds }
        #expect(covered >= span - 0.5, "no holes in what the ring holds")
    }
}
