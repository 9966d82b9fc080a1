import Foundation
import Synchronization
import Testing

/// The test rig of DESIGN.md: synthetic RTSP cameras (GStreamer, loopback only), the `junction`
/// binary, ffprobe. Every wait is bounded.
enum Rig {
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The `junction` built next to this test bundle.
    static let junction: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("junction").path
    }()

    static func tempDir(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "junction-it-\(name)-" + UUID().uuidString.prefix(8)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A free TCP port on 127.0.0.1 (bind to 0, read, close).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs a command to completion (bounded by `timeout` seconds).
    @discardableResult
    static func run(_ path: String, _ args: [String], timeout: Double = 120, environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        final class Sink: @unchecked Sendable { var data = Data() }
        let outData = Sink(), errData = Sink()
        let group = DispatchGroup()
        for (pipe, sink) in [(out, outData), (err, errData)] {
            group.enter()
            DispatchQueue.global().async {
                sink.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        group.wait()
        return Result(status: p.terminationStatus,
                      stdout: String(decoding: outData.data, as: UTF8.self),
                      stderr: String(decoding: errData.data, as: UTF8.self))
    }

    static func junction(_ args: [String]) throws -> Result { try run(junction, args) }

    /// Test clips, made once per process with ffmpeg (H.264 or H.265, 1 s GOP, AAC audio).
    static let clipLock = Mutex<[String: String]>([:])
    /// A test clip (cached per process): 25 fps, a keyframe every `gop` frames.
    static func clip(codec: String = "h264", bitrate: String = "2M", size: String = "1280x720", seconds: Int = 20, audio: String = "aac",
                     gop: Int = 25) throws -> String {
        let key = "\(codec)-\(bitrate)-\(size)-\(seconds)-\(audio)-g\(gop)"
        return try clipLock.withLock { cache in
            if let p = cache[key] { return p }
            let dir = NSTemporaryDirectory() + "junction-clips"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let ext = audio == "aac" || audio == "none" ? "mp4" : "mkv"
            let path = "\(dir)/\(key)-\(getpid()).\(ext)"
            var args = ["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=\(size):rate=25",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]
            args += codec == "h265"
                ? ["-c:v", "libx265", "-x265-params", "keyint=\(gop):min-keyint=\(gop):log-level=error", "-tag:v", "hvc1"]
                : ["-c:v", "libx264", "-g", String(gop), "-keyint_min", String(gop), "-sc_threshold", "0", "-bf", "2"]
            args += ["-preset", "veryfast", "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-pix_fmt", "yuv420p"]
            switch audio {
            case "aac": args += ["-c:a", "aac", "-b:a", "32k"]
            case "pcma": args += ["-c:a", "pcm_alaw"]
            default: args += ["-an"]
            }
            args += ["-t", String(seconds), path]
            let r = try run("/usr/bin/ffmpeg", args, timeout: 300)
            guard r.status == 0 else { throw RigError("ffmpeg could not make a clip: \(r.stderr)") }
            cache[key] = path
            return path
        }
    }

    static func ffprobe(_ args: [String]) throws -> String {
        let r = try run("/usr/bin/ffprobe", ["-v", "error"] + args, timeout: 60)
        guard r.status == 0 else { throw RigError("ffprobe \(args.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    /// Sends `signal` to a child we started, waits up to `seconds`, then SIGKILLs it.
    @discardableResult
    static func terminate(_ p: Process, signal: Int32, within seconds: Double) -> Int32 {
        if p.isRunning {
            kill(p.processIdentifier, signal)
            let deadline = Date().addingTimeInterval(seconds)
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// Waits (bounded) until `condition` holds; returns whether it did.
    static func wait(seconds: Double, every: Double = 0.25, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(UInt32(every * 1e6))
        }
        return try condition()
    }
}

struct RigError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}

/// A synthetic RTSP camera (Tests/Support/rtsp_camera.py) on 127.0.0.1.
final class Camera: @unchecked Sendable {
    let port: Int
    let clip: String
    let extra: [String]
    private var process: Process?
    var url: String { "rtsp://127.0.0.1:\(port)/cam" }

    init(clip: String, port: Int = Rig.freePort(), extra: [String] = []) {
        self.clip = clip
        self.port = port
        self.extra = extra
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [Rig.repoRoot + "/Tests/Support/rtsp_camera.py", "--clip", clip, "--port", String(port)] + extra
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        // READY is printed once the camera has played its own stream (up to 4 tries of 10 s).
        let handle = out.fileHandleForReading
        var seen = Data()
        let deadline = Date().addingTimeInterval(45)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
            if String(decoding: seen, as: UTF8.self).contains("READY") { return }
        }
        stop()
        throw RigError("the test camera did not start: \(String(decoding: seen, as: UTF8.self))")
    }

    func stop() {
        guard let p = process else { return }
        process = nil
        Rig.terminate(p, signal: SIGTERM, within: 5)
    }

    deinit { stop() }
}

/// A program the test runs in the background, its output in a log file, optionally inside a
/// network namespace the test made (`ip netns exec` execs it, so the PID is the program's).
final class Background: @unchecked Sendable {
    let executable: String
    let arguments: [String]
    let log: String
    var netns: String?
    private var process: Process?
    var pid: Int32 { process?.processIdentifier ?? 0 }
    var isRunning: Bool { process?.isRunning ?? false }

    init(_ executable: String, _ arguments: [String], log: String, netns: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.log = log
        self.netns = netns
    }

    func start() throws {
        let p = Process()
        if let netns {
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            p.arguments = ["netns", "exec", netns, executable] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
        }
        if !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
        }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        h.seekToEndOfFile()
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
    }

    /// Sends `signal`, waits (bounded), SIGKILLs if it must.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32 {
        guard let p = process else { return -1 }
        process = nil
        return Rig.terminate(p, signal: signal, within: 15)
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    deinit { stop(signal: SIGKILL) }
}

/// `junction run` as a child process.
final class Daemon: @unchecked Sendable {
    let config: String
    let background: Background
    var log: String { background.log }
    var pid: Int32 { background.pid }

    init(config: String, netns: String? = nil) {
        self.config = config
        background = Background(Rig.junction, ["run", "--config", config], log: config + ".log", netns: netns)
    }

    func start() throws { try background.start() }

    /// SIGTERM and wait: the open segment is closed cleanly.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32 { background.stop(signal: signal) }

    var output: String { background.output }
}

/// Writes a junction.toml for a test.
/// `JUNCTION_TEST_READER=junction` runs every recording test through the box's own RTSP reader
/// (`[camera] reader`), where a test does not name one.
func writeConfig(dir: String, cameraURL: String, segmentSeconds: Int = 10, extra: String = "", storageExtra: String = "max_bytes = \"2GB\"\nreserve_bytes = \"1MB\"", stall: Int = 3) throws -> String {
    let path = dir + "/junction.toml"
    var extra = extra
    if let reader = ProcessInfo.processInfo.environment["JUNCTION_TEST_READER"], !extra.contains("reader =") {
        extra = "reader = \"\(reader)\"\n" + extra   // first: `extra` may open other tables
    }
    try """
    [device]
    id = "it-box"
    [camera]
    url = "\(cameraURL)"
    stall_seconds = \(stall)
    connect_timeout_seconds = 5
    \(extra)
    [storage]
    path = "\(dir)/data"
    segment_seconds = \(segmentSeconds)
    \(storageExtra)
    """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

struct ListedSegment: Decodable {
    var id: Int64
    var path: String
    var start: String
    var end: String
    var bytes: Int64
    var sha256: String
    var flagged: Bool
    var uploaded: Bool
    var recovered: Bool
    var duration_seconds: Double
}

func listSegments(_ config: String) throws -> [ListedSegment] {
    let r = try Rig.junction(["list", "--config", config, "--json"])
    guard r.status == 0 else { throw RigError("junction list failed: \(r.stderr)") }
    return try JSONDecoder().decode([ListedSegment].self, from: Data(r.stdout.utf8))
}

func statusJSON(_ config: String) throws -> [String: Any] {
    let r = try Rig.junction(["status", "--config", config, "--json"])
    return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
}

func parseTime(_ s: String) -> Double {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: s) { return d.timeIntervalSince1970 }
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: s)!.timeIntervalSince1970
}
