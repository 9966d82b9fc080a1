import Logging
import NIOCore
import NIOPosix
import Ring
import ServiceLifecycle
import Synchronization
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's local control socket (UNIX, mode 0660: root and the `junction` group). Commands
/// that change the ring (flag, unflag) go through it while the daemon runs, so the one process
/// that records also does every write; with the daemon stopped the CLI writes the index itself.
///
/// Protocol: one JSON request line, one JSON answer line, then the server closes.
public enum Control {
    public struct Request: Codable, Sendable {
        public enum Op: String, Codable, Sendable { case flag, unflag }
        public var op: Op
        public var camera: String?
        public var from: Timestamp?
        public var to: Timestamp?
        public var reason: String?
        public var preRollSeconds: Double?
        public var postRollSeconds: Double?
        public var id: Int64?

        public init(op: Op, camera: String? = nil, from: Timestamp? = nil, to: Timestamp? = nil, reason: String? = nil,
                    preRollSeconds: Double? = nil, postRollSeconds: Double? = nil, id: Int64? = nil) {
            self.op = op
            self.camera = camera
            self.from = from
            self.to = to
            self.reason = reason
            self.preRollSeconds = preRollSeconds
            self.postRollSeconds = postRollSeconds
            self.id = id
        }
    }

    public struct Answer: Codable, Sendable {
        public var flag: Ring.Flag?
        public var error: String?
        public var code: String?
        public init(flag: Ring.Flag? = nil, error: String? = nil, code: String? = nil) {
            self.flag = flag
            self.error = error
            self.code = code
        }
    }

    /// What the ring does for a request (the daemon's side).
    static func perform(_ r: Request, ring: Ring) async -> Answer {
        do {
            switch r.op {
            case .flag:
                guard let camera = r.camera, let from = r.from, let to = r.to else { return Answer(error: "flag needs camera, from and to", code: "invalidArgument") }
                let flag = try await ring.flag(.init(camera: camera, from: from, to: to, reason: r.reason, source: .cli,
                                                     preRollSeconds: r.preRollSeconds ?? 0, postRollSeconds: r.postRollSeconds ?? 0))
                return Answer(flag: flag)
            case .unflag:
                guard let id = r.id else { return Answer(error: "unflag needs an id", code: "invalidArgument") }
                return Answer(flag: try await ring.unflag(id: id))
            }
        } catch {
            return Answer(error: error.message, code: error.code.rawValue)
        }
    }

    /// Sends a request to the daemon. Returns nil when no daemon listens (the caller then works
    /// on the index itself); throws when one listens but the exchange fails.
    public static func send(_ request: Request, socket path: String, timeoutSeconds: Int = 30) throws -> Answer? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return nil }  // ENOENT, ECONNREFUSED: no daemon
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line = try JSONEncoder().encode(request)
        line.append(0x0a)
        let sent = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard sent == line.count else { throw ControlError("the recorder's control socket did not take the request") }
        var answer = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            answer += buf[0..<n]
        }
        guard !answer.isEmpty else { throw ControlError("the recorder did not answer on its control socket within \(timeoutSeconds) s") }
        return try JSONDecoder().decode(Answer.self, from: Data(answer))
    }
}

public struct ControlError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The daemon's side: listens on the socket until shutdown.
public struct ControlService: Service {
    let path: String
    let ring: Ring
    let logger: Logger

    public init(path: String, ring: Ring, logger: Logger) {
        self.path = path
        self.ring = ring
        self.logger = logger
    }

    /// Bounds (README, "Limits"): whatever the socket receives, the recorder keeps its file
    /// descriptors and its time. At most `maxConnections` at once (more are closed at once), each
    /// closed `deadlineSeconds` after it opened, a request line of at most `maxRequestBytes`.
    public static let maxConnections = 8
    public static let deadlineSeconds: Int64 = 10
    public static let maxRequestBytes = 16 << 10

    final class ConnectionCount: Sendable {
        let value = Atomic<Int>(0)
    }

    public func run() async throws {
        let open = ConnectionCount()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 16)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                let count = open.value.wrappingAdd(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in open.value.wrappingSubtract(1, ordering: .relaxed) }
                if count > Self.maxConnections {
                    channel.close(promise: nil)
                } else {
                    channel.eventLoop.scheduleTask(in: .seconds(Self.deadlineSeconds)) { channel.close(promise: nil) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        chmod(path, 0o660)
        logger.info("control socket listening", metadata: ["path": "\(path)"])
        let ring = self.ring
        let logger = self.logger
        await cancelWhenGracefulShutdown {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await Self.serve(connection, ring: ring, logger: logger) }
                    }
                }
            }
        }
        unlink(path)
    }

    static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, ring: Ring, logger: Logger) async {
        try? await connection.executeThenClose { inbound, outbound in
            var line = [UInt8]()
            for try await buffer in inbound {
                line += buffer.readableBytesView
                if line.contains(0x0a) || line.count > Self.maxRequestBytes { break }
            }
            let answer: Control.Answer
            if line.count > Self.maxRequestBytes && !line.prefix(Self.maxRequestBytes).contains(0x0a) {
                answer = Control.Answer(error: "the request is longer than \(Self.maxRequestBytes) bytes", code: "invalidArgument")
            } else if let request = try? JSONDecoder().decode(Control.Request.self, from: Data(line.prefix { $0 != 0x0a })) {
                answer = await Control.perform(request, ring: ring)
            } else {
                answer = Control.Answer(error: "the request is not the JSON expected", code: "invalidArgument")
            }
            var out = try JSONEncoder().encode(answer)
            out.append(0x0a)
            try await outbound.write(ByteBuffer(bytes: out))
        }
    }
}
