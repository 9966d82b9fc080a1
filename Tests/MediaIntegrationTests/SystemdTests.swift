import Foundation
import Testing

/// The unit file and the daemon's side of the systemd contract (Type=notify, watchdog).
@Suite(.timeLimit(.minutes(3)))
struct SystemdTests {
    @Test(arguments: ["junction.service", "commune.service", "junction-firstboot.service", "junction-growdata.service",
                      "junction-report.service", "junction-report.timer"])
    func unitVerifies(_ name: String) throws {
        let dir = Rig.tempDir("unit")
        let bin = URL(fileURLWithPath: Rig.junction).deletingLastPathComponent().path
        // The units as installed, with the programs where this build and the image's scripts are.
        func installed(_ unit: String) throws -> String {
            try String(contentsOfFile: Rig.repoRoot + "/systemd/\(unit)", encoding: .utf8)
                .replacingOccurrences(of: "/usr/bin/junction", with: bin + "/junction")
                .replacingOccurrences(of: "/usr/bin/commune", with: bin + "/commune")
                .replacingOccurrences(of: "/usr/lib/junction/", with: Rig.repoRoot + "/image/")
        }
        let unit = try installed(name)
        try unit.write(toFile: dir + "/\(name)", atomically: true, encoding: .utf8)
        if name.hasSuffix(".timer") {
            let service = name.replacingOccurrences(of: ".timer", with: ".service")
            try installed(service).write(toFile: dir + "/\(service)", atomically: true, encoding: .utf8)
        }
        let r = try Rig.run("/usr/bin/systemd-analyze", ["verify", dir + "/\(name)"])
        #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.isEmpty, "\(r.stdout)\(r.stderr)")
        if name == "junction.service" || name == "commune.service" { #expect(unit.contains("CapabilityBoundingSet=\n") && unit.contains("ProtectSystem=strict")) }
        if name == "junction.service" {
            #expect(unit.contains("Type=notify") && unit.contains("WatchdogSec="))
            #expect(!unit.contains("ProtectClock=yes"), "ProtectClock's filter hides whether the clock is synchronised")
        }
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

    /// `junction firstboot`: a typo in the installer's file ends in junction-status.txt on the
    /// FAT partition naming the line and what to do, the previous settings kept; a good file is
    /// installed and the status file says so.
    @Test func firstbootTakesTheInstallersFileOrSaysWhy() throws {
        let dir = Rig.tempDir("firstboot")
        let boot = dir + "/boot"
        try FileManager.default.createDirectory(atPath: boot, withIntermediateDirectories: true)
        let etc = dir + "/etc/junction.toml"
        try "[device]\nid = \"box-1\"\n[camera]\nurl = \"rtsp://10.0.0.5/x\"\nstall_secs = 3\n".write(toFile: boot + "/junction.toml", atomically: true, encoding: .utf8)
        let bad = try Rig.junction(["firstboot", "--from", boot + "/junction.toml", "--config", etc])
        #expect(bad.status == 1)
        var status = try String(contentsOfFile: boot + "/junction-status.txt", encoding: .utf8)
        #expect(status.contains("PROBLEM") && status.contains("line 5") && status.contains("stall_secs") && status.contains("text editor"), "\(status)")
        #expect(!FileManager.default.fileExists(atPath: etc), "a bad file is not installed")

        try "[device]\nid = \"box-1\"\n[camera]\nurl = \"rtsp://10.0.0.5/x\"\n[storage]\npath = \"\(dir)/data\"\n".write(toFile: boot + "/junction.toml", atomically: true, encoding: .utf8)
        let good = try Rig.junction(["firstboot", "--from", boot + "/junction.toml", "--config", etc])
        #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
        status = try String(contentsOfFile: boot + "/junction-status.txt", encoding: .utf8)
        #expect(status.contains("OK") && status.contains("box-1"), "\(status)")
        #expect(try String(contentsOfFile: etc, encoding: .utf8).contains("box-1"))
        #expect(FileManager.default.fileExists(atPath: dir + "/data"))

        // A later bad edit keeps the working settings.
        try "[device]\nid = \"\"\n".write(toFile: boot + "/junction.toml", atomically: true, encoding: .utf8)
        #expect(try Rig.junction(["firstboot", "--from", boot + "/junction.toml", "--config", etc]).status == 1)
        #expect(try String(contentsOfFile: etc, encoding: .utf8).contains("box-1"))
        #expect(try String(contentsOfFile: boot + "/junction-status.txt", encoding: .utf8).contains("keeps recording with its previous ones"))

        // No file on the card: a configured box keeps its settings (and boots clean); a new one says what is missing.
        try FileManager.default.removeItem(atPath: boot + "/junction.toml")
        let none = try Rig.junction(["firstboot", "--from", boot + "/junction.toml", "--config", etc])
        #expect(none.status == 0, "\(none.stdout)")
        #expect(try String(contentsOfFile: boot + "/junction-status.txt", encoding: .utf8).contains("keeps using its current settings"))
        let fresh = try Rig.junction(["firstboot", "--from", boot + "/junction.toml", "--config", dir + "/none/junction.toml"])
        #expect(fresh.status == 1)
        #expect(try String(contentsOfFile: boot + "/junction-status.txt", encoding: .utf8).contains("PROBLEM: there is no junction.toml"))
    }
}
