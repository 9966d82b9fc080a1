import Foundation
import Testing

/// The unit file and the daemon's side of the systemd contract (Type=notify, watchdog).
@Suite(.timeLimit(.minutes(3)))
struct SystemdTests {
    @Test(arguments: ["junction", "commune"]) func unitVerifies(_ name: String) throws {
        let dir = Rig.tempDir("unit")
        let binary = URL(fileURLWithPath: Rig.junction).deletingLastPathComponent().appendingPathComponent(name).path
        let unit = try String(contentsOfFile: Rig.repoRoot + "/systemd/\(name).service", encoding: .utf8)
            .replacingOccurrences(of: "/usr/bin/\(name)", with: binary)
        try unit.write(toFile: dir + "/\(name).service", atomically: true, encoding: .utf8)
        let r = try Rig.run("/usr/bin/systemd-analyze", ["verify", dir + "/\(name).service"])
        #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.isEmpty, "\(r.stdout)\(r.stderr)")
        #expect(unit.contains("CapabilityBoundingSet=\n") && unit.contains("ProtectSystem=strict"))
        if name == "junction" { #expect(unit.contains("Type=notify") && unit.contains("WatchdogSec=")) }
    }

    /// `junction run` under a notification socket, as systemd starts it: READY=1 once recording,
    /// WATCHDOG=1 while packets flow, STATUS= in words.
    @Test func daemonNotifiesReadyAndFeedsWatchdog() throws {
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("notify")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 4)
        let socketPath = dir + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(socketPath.utf8) + [0]) }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        try #require(bound == 0)
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        let p = Process()
        p.executableURL = URL(fileURLWithPath: Rig.junction)
        p.arguments = ["run", "--config", config]
        p.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "10000000"]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { Rig.terminate(p, signal: SIGTERM, within: 10) }

        var messages: [String] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(30)
        // READY, WATCHDOG and STATUS of a round arrive in that order: wait for all three.
        func complete() -> Bool {
            messages.contains("READY=1") && messages.contains("WATCHDOG=1") && messages.contains { $0.hasPrefix("STATUS=recording") }
        }
        while Date() < deadline && !complete() {
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { messages.append(String(decoding: buf[0..<n], as: UTF8.self)) }
        }
        #expect(messages.filter { $0 == "READY=1" }.count == 1, "\(messages)")
        #expect(messages.contains("WATCHDOG=1"))
        #expect(messages.contains { $0.hasPrefix("STATUS=recording h264 1280x720") }, "\(messages)")
        #expect(messages.firstIndex(of: "READY=1")! < messages.firstIndex(of: "WATCHDOG=1")!)
    }
}
