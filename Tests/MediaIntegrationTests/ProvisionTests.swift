import Foundation
import Testing

/// `junction provision`: live checks before writing, a refusal for an unreachable camera unless
/// --offline, and the prompts answered through a pseudo-terminal (`script`), not only flags.
@Suite(.timeLimit(.minutes(3)))
struct ProvisionTests {
    @Test func checksLiveThenWrites() throws {
        let dir = Rig.tempDir("provision")
        let config = dir + "/junction.toml"
        let dead = try Rig.junction(["provision", "--config", config, "--device-id", "box-7", "--camera-url", "rtsp://127.0.0.1:1/cam",
                                     "--data-path", dir + "/data", "--server-url", "none"])
        #expect(dead.status != 0 && dead.stderr.contains("--offline") && dead.stderr.contains("Nothing was written"), "\(dead.stderr)")
        #expect(!FileManager.default.fileExists(atPath: config))
        let offline = try Rig.junction(["provision", "--config", config, "--device-id", "box-7", "--camera-url", "rtsp://127.0.0.1:1/cam",
                                        "--data-path", dir + "/data", "--server-url", "none", "--offline"])
        #expect(offline.status == 0, "\(offline.stderr)")
        let bad = try Rig.junction(["provision", "--config", config, "--device-id", "bad id!", "--offline"])
        #expect(bad.status != 0 && bad.stderr.contains("device.id"), "invalid values are refused before writing: \(bad.stderr)")

        // The installer at the junction: a real camera and commune, answered at the prompts.
        let commune = try UplinkFaultTests.Commune()
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        _ = Rig.wait(seconds: 10) { (try? Rig.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "http://127.0.0.1:\(commune.port)/files"]))?.status == 0 }
        let answers = "it-box\n\(camera.url)\n\(dir)/data\nhttp://127.0.0.1:\(commune.port)\n\(commune.token)\n"
        let script = try Rig.run("/bin/sh", ["-c", "printf '%s' \"$ANSWERS\" | script -qec '\(Rig.junction) provision --config \(config)' /dev/null"],
                                 environment: ["ANSWERS": answers])
        #expect(script.status == 0, "\(script.stdout)\(script.stderr)")
        #expect(script.stdout.contains("Device id [box-7]") && script.stdout.contains("✔ camera") && script.stdout.contains("token accepted"),
                "\(script.stdout)")
        let written = try String(contentsOfFile: config, encoding: .utf8)
        #expect(written.contains("id = \"it-box\"") && written.contains(camera.url) && written.contains(commune.token), "\(written)")
        let check = try Rig.junction(["doctor", "--config", config, "--json"])
        #expect(check.stdout.contains("\"name\" : \"commune\""), "the written file loads: \(check.stderr)")
    }
}
