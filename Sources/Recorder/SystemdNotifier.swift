#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram per message to `$NOTIFY_SOCKET` (a path, or
/// an abstract socket when it starts with '@'). systemd runs `junction run` as `Type=notify`
/// with `WatchdogSec=`; the recorder sends READY=1 when recording starts and WATCHDOG=1 only
/// while packets flow and the ring accepts writes, so a wedged recorder is restarted.
public struct SystemdNotifier: Sendable {
    public let socketPath: String
    /// How often systemd wants WATCHDOG=1 (`$WATCHDOG_USEC`), if it does.
    public let watchdogSeconds: Double?

    /// Nil when not started by systemd with NotifyAccess (no `$NOTIFY_SOCKET`).
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        socketPath = path
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init),
           environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true {
            watchdogSeconds = usec / 1e6
        } else {
            watchdogSeconds = nil
        }
    }

    public init(socketPath: String, watchdogSeconds: Double? = nil) {
        self.socketPath = socketPath
        self.watchdogSeconds = watchdogSeconds
    }

    /// Sends `message` ("READY=1", "WATCHDOG=1", "STATUS=…"); returns whether it was sent.
    @discardableResult
    public func send(_ message: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socketPath.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let sent = message.withCString { text in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, text, strlen(text), Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent >= 0
    }
}
