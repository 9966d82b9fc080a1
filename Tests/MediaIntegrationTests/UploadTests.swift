import Foundation
import Testing

/// Box → commune on loopback with the real binaries: a flagged range arrives byte-identical,
/// its pins are released, unflagged footage never leaves the box.
@Suite(.timeLimit(.minutes(3)))
struct UploadTests {
    static var commune: String { URL(fileURLWithPath: Rig.junction).deletingLastPathComponent().appendingPathComponent("commune").path }

    @Test func flaggedRangeReachesTheCommune() throws {
        let data = Rig.tempDir("commune")
        let add = try Rig.run(Self.commune, ["devices", "add", "it-box", "--data", data, "--json"])
        let token = try #require((try JSONSerialization.jsonObject(with: Data(add.stdout.utf8)) as? [String: String])?["token"], "\(add.stderr)")
        let port = Rig.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.commune)
        server.arguments = ["serve", "--data", data, "--listen", "127.0.0.1:\(port)", "--insecure-http"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { Rig.terminate(server, signal: SIGTERM, within: 5) }

        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("upload")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2, extra: """
            [server]
            url = "http://127.0.0.1:\(port)"
            token = "\(token)"
            allow_insecure_http = true
            [upload]
            pre_roll_seconds = 0
            post_roll_seconds = 0
            """)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 4 }, "\(daemon.output)")
        let segments = try listSegments(config)
        let from = segments[1].start, to = segments[2].end
        let flag = try Rig.junction(["flag", "--config", config, "--from", from, "--to", to, "--reason", "it test"])
        #expect(flag.status == 0, "\(flag.stdout)\(flag.stderr)")
        // The flag went through the running recorder's control socket (root and its group only).
        #expect(daemon.output.contains("[Ring] flagged"), "the daemon made the flag: \(daemon.output.suffix(800))")
        let mode = (try FileManager.default.attributesOfItem(atPath: dir + "/data/control.sock")[.posixPermissions] as? Int) ?? 0
        #expect(mode == 0o660, "control socket mode \(String(mode, radix: 8))")
        let flagged = try listSegments(config).filter(\.flagged)
        #expect(flagged.count >= 2)

        var clips: [[String: Any]] = []
        _ = Rig.wait(seconds: 30, every: 0.5) {
            let r = try? Rig.run(Self.commune, ["clips", "--data", data, "--json"])
            clips = (r.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [[String: Any]] }) ?? []
            return clips.count >= flagged.count
        }
        #expect(clips.count == flagged.count, "every flagged segment arrives, nothing else: \(daemon.output.suffix(1500))")
        for s in flagged {
            let clip = clips.first { ($0["sha256"] as? String) == s.sha256 }
            #expect(clip != nil, "\(s.path) arrived")
            if let path = clip?["path"] as? String {
                let sha = try Rig.run("/usr/bin/sha256sum", [path]).stdout.prefix(64)
                #expect(String(sha) == s.sha256, "byte-identical")
                #expect(clip?["device"] as? String == "it-box" && clip?["camera"] as? String == "cam1")
            }
        }
        #expect(Rig.wait(seconds: 10) { ((try? listSegments(config)) ?? []).filter(\.flagged).allSatisfy(\.uploaded) })
        let status = try statusJSON(config)
        #expect((status["usage"] as? [String: Any])?["pinned_bytes"] as? Int == 0, "pins released")
        #expect(daemon.stop() == 0, "a clean exit on SIGTERM (systemd counts anything else as a failure): \(daemon.output.suffix(800))")
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/control.sock"), "the socket is removed on exit")
    }

    /// `commune serve --config commune.toml`: the file's settings are used; a wrong key is named
    /// with its line.
    @Test func communeReadsItsConfigFile() throws {
        let data = Rig.tempDir("commune-conf")
        let port = Rig.freePort()
        try """
            [server]
            data = "\(data)"
            listen = "127.0.0.1:\(port)"
            insecure_http = true
            [limits]
            max_upload_bytes = "1GB"
            """.write(toFile: data + "/commune.toml", atomically: true, encoding: .utf8)
        let server = Background(Self.commune, ["serve", "--config", data + "/commune.toml"], log: data + "/serve.log")
        try server.start()
        defer { server.stop() }
        var options = ""
        #expect(Rig.wait(seconds: 15) {
            options = (try? Rig.run("/usr/bin/curl", ["-s", "-i", "-X", "OPTIONS", "http://127.0.0.1:\(port)/files/"]))?.stdout ?? ""
            return options.lowercased().contains("tus-max-size: 1000000000")
        }, "\(options) \(server.output)")
        // Operator commands find the data through the same file.
        let clips = try Rig.run(Self.commune, ["clips", "--config", data + "/commune.toml", "--json"])
        #expect(clips.status == 0 && clips.stdout.hasPrefix("["), "\(clips.stderr)")
        try "[server]\ndata = \"\(data)\"\nlisten_on = \"x\"\n".write(toFile: data + "/bad.toml", atomically: true, encoding: .utf8)
        let bad = try Rig.run(Self.commune, ["serve", "--config", data + "/bad.toml"])
        #expect(bad.status != 0 && bad.stderr.contains("bad.toml:3") && bad.stderr.contains("listen_on"), "\(bad.stderr)")
    }
}
