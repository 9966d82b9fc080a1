import Foundation
import Testing

/// `junction doctor` against a real camera, recorder and commune: ✔ on a healthy box, ✘ with the
/// right advice for an unreachable camera, a wrong token and a read-only data path.
@Suite(.timeLimit(.minutes(3)))
struct DoctorTests {
    struct Line { var mark: String; var name: String; var detail: String; var advice: String? }

    func doctor(_ config: String) throws -> (Int32, [Line], String) {
        let r = try Rig.junction(["doctor", "--config", config, "--json"])
        let items = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]) ?? []
        let lines = items.map { item -> Line in
            let level = item["level"] as? String ?? ""
            return Line(mark: level == "ok" ? "✔" : level == "warning" ? "⚠" : "✘", name: item["name"] as? String ?? "",
                        detail: item["detail"] as? String ?? "", advice: item["advice"] as? String)
        }
        return (r.status, lines, r.stdout + r.stderr)
    }

    @Test func healthyThenBroken() throws {
        let commune = try UplinkFaultTests.Commune()
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("doctor")
        let server = """
            [server]
            url = "http://127.0.0.1:\(commune.port)"
            token = "\(commune.token)"
            allow_insecure_http = true
            """
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2, extra: server)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? statusJSON(config))?["recording"] as? Bool) == true }, "\(daemon.output)")

        var (status, lines, text) = try doctor(config)
        #expect(status == 0, "a healthy box: \(text)")
        for name in ["config", "recorder", "camera", "storage", "ring", "card speed", "commune"] {
            #expect(lines.first { $0.name == name }?.mark == "✔", "\(name): \(text)")
        }
        #expect(lines.first { $0.name == "camera" }?.detail.contains("1280×720") == true)
        #expect(lines.first { $0.name == "commune" }?.detail.contains("token accepted") == true)
        let human = try Rig.junction(["doctor", "--config", config])
        #expect(human.stdout.contains("✔ camera:"), "\(human.stdout)")

        // A wrong token.
        let wrong = dir + "/wrong.toml"
        try (try String(contentsOfFile: config, encoding: .utf8)).replacingOccurrences(of: commune.token, with: String(repeating: "0", count: 64))
            .write(toFile: wrong, atomically: true, encoding: .utf8)
        (status, lines, text) = try doctor(wrong)
        #expect(status == 1)
        #expect(lines.first { $0.name == "commune" }.map { $0.mark == "✘" && $0.detail.contains("refuses this box's token") } == true, "\(text)")

        // The camera goes away.
        camera.stop()
        (status, lines, text) = try doctor(config)
        #expect(status == 1)
        #expect(lines.first { $0.name == "camera" }.map { $0.mark == "✘" && ($0.advice ?? "").contains("camera.url") } == true, "\(text)")
        daemon.stop()

        // A data path mounted read-only.
        let roDir = Rig.tempDir("doctor-ro")
        let mount = roDir + "/data"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let m = try Rig.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mount])
        try #require(m.status == 0, "mounting a tmpfs needs root: \(m.stderr)")
        defer { _ = try? Rig.run("/usr/bin/umount", [mount]) }
        let roConfig = try writeConfig(dir: roDir, cameraURL: camera.url, extra: server)
        (status, lines, text) = try doctor(roConfig)
        #expect(status == 1)
        #expect(lines.first { $0.name == "storage" }.map { $0.mark == "✘" && $0.detail.contains("Read-only") && ($0.advice ?? "").contains("read-write") } == true,
                "\(text)")
    }
}
