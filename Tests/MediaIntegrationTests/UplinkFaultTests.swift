import Foundation
import Testing

/// The uplink with the real binaries, on loopback or inside a network namespace the test makes:
/// footage requests over HTTPS, a box and a server killed mid-upload, a bad link, and tus peers
/// that are not ours.
@Suite(.serialized, .timeLimit(.minutes(6)))
struct UplinkFaultTests {
    static var commune: String { UploadTests.commune }
    static let python = "/usr/bin/env"

    /// A commune server on `port` (a fresh data dir), with one device registered.
    final class Commune {
        let data: String
        let port: Int
        let token: String
        let server: Background

        init(port: Int = Rig.freePort(), tls: (cert: String, key: String)? = nil, netns: String? = nil) throws {
            data = Rig.tempDir("commune")
            self.port = port
            let add = try Rig.run(UplinkFaultTests.commune, ["devices", "add", "it-box", "--data", data])
            token = String(add.stdout.split(separator: "\n").last ?? "")
            var args = ["serve", "--data", data, "--listen", "127.0.0.1:\(port)"]
            if let tls { args += ["--cert", tls.cert, "--key", tls.key] } else { args.append("--insecure-http") }
            server = Background(UplinkFaultTests.commune, args, log: data + "/serve.log", netns: netns)
            try server.start()
        }

        func clips() -> [[String: Any]] {
            let r = try? Rig.run(UplinkFaultTests.commune, ["clips", "--data", data, "--json"])
            return (r.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [[String: Any]] }) ?? []
        }

        func requests() -> [[String: Any]] {
            let r = try? Rig.run(UplinkFaultTests.commune, ["requests", "--data", data, "--json"])
            return (r.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [[String: Any]] }) ?? []
        }

        /// .mp4 files under the data directory: one per clip, never two for one segment.
        func files() -> [String] {
            (FileManager.default.enumerator(atPath: data)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".mp4") }
        }

        deinit { server.stop() }
    }

    /// A box recording a synthetic camera, with `[server]` pointing at `url`.
    func recordingBox(camera: Camera, serverURL: String, token: String, extraServer: String = "", upload: String = "",
                      segmentSeconds: Int = 2) throws -> (Daemon, String) {
        let dir = Rig.tempDir("box")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: segmentSeconds, extra: """
            [server]
            url = "\(serverURL)"
            token = "\(token)"
            allow_insecure_http = true
            heartbeat_seconds = 5
            \(extraServer)
            [upload]
            pre_roll_seconds = 0
            post_roll_seconds = 0
            \(upload)
            """)
        return (Daemon(config: config), config)
    }

    func expectClipsMatch(_ clips: [[String: Any]], _ segments: [ListedSegment], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(clips.count == segments.count, "one clip per flagged segment", sourceLocation: sourceLocation)
        for s in segments {
            let clip = clips.first { ($0["sha256"] as? String) == s.sha256 }
            #expect(clip != nil, "\(s.path) arrived", sourceLocation: sourceLocation)
            if let path = clip?["path"] as? String {
                let sha = try Rig.run("/usr/bin/sha256sum", [path]).stdout.prefix(64)
                #expect(String(sha) == s.sha256, "byte-identical", sourceLocation: sourceLocation)
            }
        }
    }

    /// An operator asks over the commune; the box (trusting the commune's own CA) picks it up at
    /// a heartbeat, uploads over HTTPS, and the request ends complete with its coverage. A box
    /// that does not trust the certificate says so in its log and sends nothing.
    @Test func footageRequestOverHTTPS() throws {
        let pki = Rig.tempDir("pki")
        let ssl = try Rig.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                  "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                                                  "-keyout", pki + "/key.pem", "-out", pki + "/cert.pem"])
        try #require(ssl.status == 0, "\(ssl.stderr)")
        let commune = try Commune(tls: (pki + "/cert.pem", pki + "/key.pem"))
        // The desk on the same HTTPS server: its cookies are Secure (and HttpOnly, SameSite=Strict).
        let desk = try Rig.run("/usr/bin/curl", ["-sS", "--max-time", "10", "--retry", "30", "--retry-connrefused", "--retry-delay", "1", "--cacert", pki + "/cert.pem", "-D", "-", "-o", "/dev/null",
                                                 "https://127.0.0.1:\(commune.port)/sign-in"])
        let cookie = desk.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie: desk_form=") }.map(String.init) ?? ""
        #expect(desk.stdout.hasPrefix("HTTP/1.1 200") && cookie.contains("; Secure") && cookie.contains("; HttpOnly")
                && cookie.contains("SameSite=Strict"), "\(desk.stdout) \(desk.stderr)")
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let (daemon, config) = try recordingBox(camera: camera, serverURL: "https://127.0.0.1:\(commune.port)", token: commune.token,
                                                extraServer: "ca_file = \"\(pki)/cert.pem\"")
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 4 }, "\(daemon.output)")
        let segments = try listSegments(config)
        let ask = try Rig.run(Self.commune, ["request", "--data", commune.data, "--device", "it-box", "--from", segments[1].start,
                                             "--to", segments[2].end, "--reason", "robbery", "--json"])
        try #require(ask.status == 0, "\(ask.stderr)")
        let id = try #require((try JSONSerialization.jsonObject(with: Data(ask.stdout.utf8)) as? [String: Any])?["id"] as? String)

        var request: [String: Any] = [:]
        let done = Rig.wait(seconds: 40, every: 0.5) {
            request = commune.requests().first { $0["id"] as? String == id } ?? [:]
            return request["state"] as? String == "complete"
        }
        #expect(done, "the request completes: \(request) \(daemon.output.suffix(2000))")
        let coverage = request["coverage"] as? [[String: Any]] ?? []
        #expect(coverage.count == 1 && coverage.first?["status"] as? String == "uploaded", "\(coverage)")
        #expect(coverage.first?["from"] as? String == segments[1].start && coverage.first?["to"] as? String == segments[2].end)
        let flagged = try listSegments(config).filter(\.flagged)
        try expectClipsMatch(commune.clips(), flagged)
        #expect(commune.clips().allSatisfy { $0["request"] as? String == id })
        let devices = try Rig.run(Self.commune, ["devices", "--data", commune.data])
        #expect(devices.stdout.contains("it-box") && devices.stdout.contains("recording"), "health from the heartbeat: \(devices.stdout)")

        // Without the CA the box refuses the server's certificate, and says so.
        daemon.stop()
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "ca_file = \"\(pki)/cert.pem\"", with: "")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let before = commune.clips().count
        let flag = try Rig.junction(["flag", "--config", config, "--from", segments[0].start, "--to", segments[0].end])
        #expect(flag.status == 0, "\(flag.stderr)")
        try daemon.start()
        #expect(Rig.wait(seconds: 20) { daemon.output.contains("uplink: server not reachable") && daemon.output.lowercased().contains("certificate") },
                "\(daemon.output.suffix(1500))")
        #expect(commune.clips().count == before, "nothing goes to a server whose certificate does not verify")
    }

    /// SIGKILL the box mid-upload, then kill and restart the server mid-upload: every flagged
    /// segment arrives once, byte-identical, and the bytes sent beyond the files' own are
    /// bounded by one chunk per interruption (counted by a proxy in between).
    @Test func boxAndServerKilledMidUpload() throws {
        let commune = try Commune()
        let proxyPort = Rig.freePort()
        let stats = commune.data + "/link.json"
        let proxy = Background("/usr/bin/python3", [Rig.repoRoot + "/Tests/Support/flaky_link.py", "--listen", "\(proxyPort)",
                                                    "--target", "\(commune.port)", "--stats", stats, "--duration", "600"],
                               log: commune.data + "/link.log")
        try proxy.start()
        defer { proxy.stop() }
        let camera = Camera(clip: try Rig.clip(bitrate: "4M"))
        try camera.start()
        defer { camera.stop() }
        // 4000 kbit/s: each 2-s segment (~1 MB) takes about 2 s to go, so there is time to kill.
        let (daemon, config) = try recordingBox(camera: camera, serverURL: "http://127.0.0.1:\(proxyPort)", token: commune.token,
                                                upload: "max_kbps = 4000")
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 40) { ((try? listSegments(config)) ?? []).count >= 7 }, "\(daemon.output)")
        let segments = try listSegments(config)
        let flag = try Rig.junction(["flag", "--config", config, "--from", segments[0].start, "--to", segments[5].end])
        try #require(flag.status == 0, "\(flag.stderr)")

        #expect(Rig.wait(seconds: 30, every: 0.1) { commune.clips().count >= 1 }, "\(daemon.output.suffix(1500))")
        _ = Rig.wait(seconds: 1, every: 0.1) { false }   // mid-way through the next file
        daemon.stop(signal: SIGKILL)
        try daemon.start()
        #expect(Rig.wait(seconds: 30, every: 0.2) { commune.clips().count >= 3 }, "\(daemon.output.suffix(1500))")
        _ = Rig.wait(seconds: 1, every: 0.1) { false }
        commune.server.stop(signal: SIGKILL)
        _ = Rig.wait(seconds: 3) { false }               // the box sees the server gone and probes
        try commune.server.start()

        let flagged = try listSegments(config).filter(\.flagged)
        #expect(Rig.wait(seconds: 60, every: 0.5) { commune.clips().count >= flagged.count }, "\(daemon.output.suffix(2000))")
        try expectClipsMatch(commune.clips(), flagged)
        #expect(commune.files().count == flagged.count, "no segment stored twice: \(commune.files())")
        #expect(Rig.wait(seconds: 10) { ((try? listSegments(config)) ?? []).filter(\.flagged).allSatisfy(\.uploaded) }, "pins released")

        proxy.stop()
        let link = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any] ?? [:]
        let sent = link["bytes_up"] as? Int ?? 0
        let payload = flagged.reduce(0) { $0 + Int($1.bytes) }
        let overhead = (link["connections"] as? Int ?? 0) * 2000   // request heads, heartbeats, probes
        let resent = sent - payload
        print("box+server kill: payload \(payload) B, sent \(sent) B, beyond payload \(resent) B (allowance for HTTP heads \(overhead) B)")
        #expect(resent >= 0)
        #expect(resent <= 2 * (4 << 20) + overhead, "at most one chunk re-sent per interruption")
    }

    /// A bad link inside a network namespace this test makes: 1 % packet loss each way
    /// (iptables), 40 ms RTT, 16 Mbit/s, and the link down for 2 s every 10 s (the proxy). A
    /// 20 MB flagged range arrives complete, each segment once.
    @Test func twentyMegabytesOverABadLink() throws {
        try #require(getuid() == 0, "network namespaces need root")
        let ns = "jt-\(getpid())-\(Int.random(in: 0..<100000))"
        try #require(try Rig.run("/usr/sbin/ip", ["netns", "add", ns]).status == 0)
        defer { _ = try? Rig.run("/usr/sbin/ip", ["netns", "del", ns]) }
        for args in [["link", "set", "lo", "up"], ["link", "set", "lo", "mtu", "1500"]] {
            try #require(try Rig.run("/usr/sbin/ip", ["-n", ns] + args).status == 0)
        }
        _ = try Rig.run("/usr/sbin/ip", ["netns", "exec", ns, "ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"])

        // Record ~20 MB first (outside: the camera lives on the host's loopback).
        let camera = Camera(clip: try Rig.clip(bitrate: "8M"))
        try camera.start()
        let commune = try Commune(netns: ns)
        let proxyPort = Rig.freePort()
        let (daemon, config) = try recordingBox(camera: camera, serverURL: "http://127.0.0.1:\(proxyPort)", token: commune.token)
        try daemon.start()
        var flaggedBytes: Int64 = 0
        try #require(Rig.wait(seconds: 60, every: 0.5) {
            let s = (try? listSegments(config)) ?? []
            flaggedBytes = s.reduce(0) { $0 + $1.bytes }
            return flaggedBytes >= 20_000_000
        }, "\(daemon.output.suffix(1000))")
        daemon.stop()
        camera.stop()
        let segments = try listSegments(config)
        let (first, last) = (try #require(segments.first), try #require(segments.last))
        let flag = try Rig.junction(["flag", "--config", config, "--from", first.start, "--to", last.end])
        try #require(flag.status == 0, "\(flag.stderr)")

        // The link: loss on the proxy's port both ways, then the proxy, then the box in the namespace.
        for rule in [["--dport", "\(proxyPort)"], ["--sport", "\(proxyPort)"]] {
            let r = try Rig.run("/usr/sbin/ip", ["netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "lo", "-p", "tcp"] + rule +
                                ["-m", "statistic", "--mode", "random", "--probability", "0.01", "-j", "DROP"])
            try #require(r.status == 0, "iptables: \(r.stderr)")
        }
        let stats = commune.data + "/link.json"
        let proxy = Background("/usr/bin/python3", [Rig.repoRoot + "/Tests/Support/flaky_link.py", "--listen", "\(proxyPort)",
                                                    "--target", "\(commune.port)", "--rate-kbps", "16000", "--delay-ms", "20",
                                                    "--flap-every", "10", "--flap-seconds", "2", "--stats", stats, "--duration", "400"],
                               log: commune.data + "/link.log", netns: ns)
        try proxy.start()
        defer { proxy.stop() }
        let boxInNS = Daemon(config: config, netns: ns)
        try boxInNS.start()
        defer { boxInNS.stop() }

        // The flagged set is read from the index as the box sees it once started: if the first
        // daemon was slow to stop and got SIGKILLed, start-up recovery indexes its last partial
        // segment, which the flag's post-roll covers, so it is uploaded too (as it should be).
        let started = Date()
        var flagged = try listSegments(config).filter(\.flagged)
        let arrived = Rig.wait(seconds: 240, every: 1) {
            flagged = (try? listSegments(config).filter(\.flagged)) ?? flagged
            return commune.clips().count >= flagged.count
        }
        let seconds = Date().timeIntervalSince(started)
        #expect(arrived, "\(boxInNS.output.suffix(2000))")
        try expectClipsMatch(commune.clips(), flagged)
        #expect(commune.files().count == flagged.count, "nothing stored twice")
        proxy.stop()
        let link = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any] ?? [:]
        let sent = link["bytes_up"] as? Int ?? 0
        let payload = flagged.reduce(0) { $0 + Int($1.bytes) }
        let resumes = link["resume_after_flap_s"] as? [Double] ?? []
        print("bad link: \(payload) B in \(Int(seconds)) s, sent \(sent) B (\(String(format: "%.2f", Double(sent - payload) * 100 / Double(payload))) % beyond payload), flaps \(link["flaps"] ?? 0), resumed after each flap in \(resumes) s")
        #expect(resumes.allSatisfy { $0 <= 10 }, "uploading resumes within seconds of the link returning, not after a long backoff: \(resumes)")
        #expect(Double(sent - payload) < 0.02 * Double(payload), "flaps cost almost nothing: the commune keeps what arrived")
    }

    /// tus peers that are not ours: tuspy (PyPI) uploads to the commune; the box uploads to
    /// tuspyserver (PyPI).
    @Test func interoperatesWithOtherTusImplementations() throws {
        let commune = try Commune()
        let file = commune.data + "/peer.bin"
        try Data((0..<3_000_000).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: file))
        let sha = String(try Rig.run("/usr/bin/sha256sum", [file]).stdout.prefix(64))
        _ = Rig.wait(seconds: 10) { (try? Rig.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "http://127.0.0.1:\(commune.port)/files"]))?.status == 0 }
        let script = """
            from tusclient import client
            c = client.TusClient("http://127.0.0.1:\(commune.port)/files/", headers={"Authorization": "Bearer \(commune.token)"})
            u = c.uploader("\(file)", chunk_size=1 << 20, metadata={"device": "it-box", "camera": "cam1",
                "start": "2026-11-29T10:00:00Z", "end": "2026-11-29T10:00:10Z", "sha256": "\(sha)", "filename": "peer.mp4"})
            u.upload()
            print(u.url)
            """
        let tuspy = try Rig.run(Self.python, ["python3", "-c", script])
        #expect(tuspy.status == 0, "tuspy: \(tuspy.stderr)")
        #expect(commune.clips().first?["sha256"] as? String == sha, "tuspy's upload arrives verified")

        // The box → tuspyserver (no checksum extension, no heartbeat endpoint).
        let port = Rig.freePort()
        let files = Rig.tempDir("tuspyserver")
        let peer = Background(Self.python, ["python3", Rig.repoRoot + "/Tests/Support/tus_peer_server.py", "\(port)", files], log: files + ".log")
        try peer.start()
        defer { peer.stop() }
        #expect(Rig.wait(seconds: 20) { (try? Rig.run("/usr/bin/curl", ["-s", "-X", "OPTIONS", "http://127.0.0.1:\(port)/files/"]))?.status == 0 })
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let (daemon, config) = try recordingBox(camera: camera, serverURL: "http://127.0.0.1:\(port)", token: "unused")
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 3 }, "\(daemon.output)")
        let segments = try listSegments(config)
        _ = try Rig.junction(["flag", "--config", config, "--from", segments[0].start, "--to", segments[1].end])
        let flagged = try listSegments(config).filter(\.flagged)
        #expect(Rig.wait(seconds: 30, every: 0.5) { ((try? listSegments(config)) ?? []).filter(\.flagged).allSatisfy(\.uploaded) },
                "\(daemon.output.suffix(1500)) \(peer.output.suffix(500))")
        let stored = (FileManager.default.enumerator(atPath: files)?.allObjects as? [String] ?? []).filter { !$0.hasSuffix(".info") }
        let hashes = Set(try stored.map { String(try Rig.run("/usr/bin/sha256sum", [files + "/" + $0]).stdout.prefix(64)) })
        #expect(Set(flagged.map(\.sha256)).isSubset(of: hashes), "every flagged segment is on the peer, byte-identical")
        #expect(daemon.output.contains("no heartbeat endpoint"), "the missing heartbeat is noted, not fatal")
    }
}
