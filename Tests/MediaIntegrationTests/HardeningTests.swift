import Foundation
import Testing

/// Issue 11 against the real `junction` binary: secrets never printed, the control socket cannot
/// stop the recorder, typed times never crash the CLI.
@Suite(.timeLimit(.minutes(5)))
struct HardeningTests {
    /// A raw connection to a UNIX socket; returns the fd or -1.
    func connectUnix(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if r != 0 { close(fd); return -1 }
        return fd
    }

    /// Sends one line and reads the answer (bounded by 15 s).
    func exchange(_ path: String, _ line: String) -> String? {
        let fd = connectUnix(path)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array((line + "\n").utf8)
        // MSG_NOSIGNAL: the daemon may already have closed a connection past its cap, and a
        // plain write would then kill this test process with SIGPIPE instead of failing (EPIPE).
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            answer += buf[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    // Items 2, 3 and 7.
    @Test func secretsStayOutOfLogsAndStatusAndTheControlSocketCannotStopRecording() throws {
        let camera = Camera(clip: try Rig.clip(), extra: ["--user", "admin", "--password", "p@ss"])
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("hardening")
        let config = try writeConfig(dir: dir, cameraURL: "rtsp://admin:p@ss@127.0.0.1:\(camera.port)/cam", segmentSeconds: 2, extra: """
            [log]
            level = "trace"
            [server]
            url = "https://127.0.0.1:\(Rig.freePort())"
            token = "tok-SECRET-4711"
            heartbeat_seconds = 5
            """)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 2 }, "\(daemon.output)")
        let socketPath = dir + "/data/control.sock"

        // 300 idle connections, far more than the cap: the recorder keeps its descriptors.
        var idle: [Int32] = []
        for _ in 0..<300 { let fd = connectUnix(socketPath); if fd >= 0 { idle.append(fd) } }
        defer { idle.forEach { close($0) } }
        // Values that used to kill the daemon are refused with what is allowed.
        let now = ISO8601DateFormatter().string(from: Date())
        let past = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-4))
        // The cap closes the extra connections at once; the deadline closes the rest within 10 s.
        #expect(Rig.wait(seconds: 20, every: 1) { exchange(socketPath, "{}")?.contains("not the JSON expected") == true })
        for body in [#""preRollSeconds":1e300"#, #""postRollSeconds":5e15"#, #""preRollSeconds":-5"#] {
            let answer = exchange(socketPath, #"{"op":"flag","camera":"cam1","from":"\#(past)","to":"\#(now)",\#(body)}"#) ?? ""
            #expect(answer.contains("must be 0 to 3600"), "\(body): \(answer)")
        }
        #expect(exchange(socketPath, String(repeating: "x", count: 100_000))?.contains("longer than") == true)
        let before = (try? listSegments(config))?.count ?? 0
        #expect(Rig.wait(seconds: 20) { ((try? listSegments(config)) ?? []).count >= before + 3 }, "still recording")
        #expect(daemon.background.isRunning)
        #expect(!daemon.output.contains("Too many open files"))
        // A real flag still goes through.
        let flag = try Rig.junction(["flag", "--config", config, "--from=-3s", "--to", "now"])
        #expect(flag.status == 0, "\(flag.stderr)")

        // Nothing printed anywhere holds the token or the camera password.
        let status = try Rig.junction(["status", "--config", config, "--json"]).stdout
        let human = try Rig.junction(["status", "--config", config]).stdout
        let file = (try? String(contentsOfFile: dir + "/data/status.json", encoding: .utf8)) ?? ""
        let uplink = (try? String(contentsOfFile: dir + "/data/uplink.json", encoding: .utf8)) ?? ""
        #expect(daemon.output.contains("debug") || daemon.output.contains("trace"), "the log is at trace level")
        for (name, text) in [("log", daemon.output), ("status --json", status), ("status", human), ("status.json", file), ("uplink.json", uplink)] {
            #expect(!text.contains("tok-SECRET-4711"), "the token is in \(name)")
            #expect(!text.contains("p@ss") && !text.contains("ss@127"), "the camera password is in \(name)")
        }
        #expect(file.contains("admin:***@127.0.0.1"))
    }

    // Item 16: typed times that overflowed the calendar (exit 132) are clear errors.
    @Test func absurdTimesAreRefusedWithoutACrash() throws {
        let dir = Rig.tempDir("times")
        let config = try writeConfig(dir: dir, cameraURL: "rtsp://127.0.0.1:9/cam")
        let calls: [[String]] = [
            ["list", "--from=-1e300d"], ["list", "--from=-infs"], ["flag", "--from=-1m", "--to=+1000000000d"],
            ["export", "--from=-1e300d", "--to", "now", "--output", dir], ["snapshot", "--at=-infs", "--output", dir + "/x.jpg"],
        ]
        for args in calls {
            let r = try Rig.junction([args[0], "--config", config] + args.dropFirst())
            #expect(r.status == 1 || r.status == 64, "\(args): exit \(r.status) \(r.stderr)")
            #expect((r.stderr + r.stdout).contains("not a time") || (r.stderr + r.stdout).contains("100 years"), "\(args): \(r.stderr)")
        }
    }

    // Items 11 and 9/10 end to end: a half-truncated index does not stop the box; flags and pins
    // survive; a damaged segment is quarantined by reindex, which says so and exits non-zero.
    @Test func aCorruptIndexIsRebuiltWhileRecordingGoesOnAndFlagsSurvive() throws {
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("corrupt-index")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2)
        var daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 3 }, "\(daemon.output)")
        for _ in 0..<2 {
            let f = try Rig.junction(["flag", "--config", config, "--from=-5s", "--to=-1s", "--reason", "case"])
            #expect(f.status == 0, "\(f.stderr)")
        }
        let flagsBefore = try Rig.junction(["flags", "--config", config, "--json"]).stdout
        let pinnedBefore = try listSegments(config).filter(\.flagged).map(\.path)
        #expect(daemon.stop() == 0)
        let index = dir + "/data/index.sqlite"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: index))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: index))
        daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 40) { ((try? listSegments(config)) ?? []).count >= pinnedBefore.count + 3 }, "\(daemon.output)")
        #expect(daemon.background.isRunning)
        #expect(daemon.output.contains("index rebuilt"), "\(daemon.output)")
        let flagsAfter = try Rig.junction(["flags", "--config", config, "--json"]).stdout
        func ids(_ json: String) -> [Int] {
            ((try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
        }
        #expect(ids(flagsAfter).count == 2 && ids(flagsAfter) == ids(flagsBefore), "\(flagsBefore) → \(flagsAfter)")
        let pinnedAfter = try listSegments(config).filter(\.flagged).map(\.path)
        #expect(Set(pinnedBefore).isSubset(of: Set(pinnedAfter)), "\(pinnedBefore) → \(pinnedAfter)")
        let check = try Rig.junction(["check", "--config", config])
        #expect(check.stdout.contains("index_rebuilt") || check.stdout.contains("rebuilt"), "\(check.stdout)")
        #expect(daemon.stop() == 0)

        // Garble a flagged segment: check --deep sees it, reindex quarantines it and says so.
        let victim = pinnedAfter[0]
        let relative = String(victim.dropFirst((dir + "/data/segments/").count))
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: victim))
        try h.seek(toOffset: 20_000)
        try h.write(contentsOf: Data(repeating: 0x5A, count: 4096))
        try h.close()
        let re = try Rig.junction(["reindex", "--config", config])
        #expect(re.status == 1 && re.stdout.contains("DAMAGED"), "\(re.stdout) \(re.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/data/quarantine/" + relative))
        let deep = try Rig.junction(["check", "--config", config, "--deep"])
        #expect(!deep.stdout.contains("hash_mismatch"), "no damaged bytes are vouched for: \(deep.stdout)")
    }
}
