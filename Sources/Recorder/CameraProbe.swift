import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A cheap "is the camera back?" check used while the recorder waits between reconnects, so a
/// camera that returns after a long outage is recorded again within a second or two instead of
/// at the end of a 30 s backoff.
public protocol CameraProbe: Sendable {
    func isReachable() async -> Bool
}

/// Opens (and closes) a TCP connection to the camera's RTSP/HTTP port.
public struct TCPProbe: CameraProbe {
    public let host: String
    public let port: Int
    let pool: NIOThreadPool

    /// Nil for URLs that are not network streams (files).
    public init?(url: String, pool: NIOThreadPool = .singleton) {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let defaults = ["rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935]
        guard let defaultPort = defaults[scheme] else { return nil }
        var authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host = String(authority)
        var port = defaultPort
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let rest = authority[authority.index(after: close)...]
            if rest.hasPrefix(":"), let p = Int(rest.dropFirst()) { port = p }
        } else if let colon = authority.lastIndex(of: ":"), let p = Int(authority[authority.index(after: colon)...]) {
            host = String(authority[..<colon])
            port = p
        }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
        self.pool = pool
    }

    public func isReachable() async -> Bool {
        let host = host, port = port
        return (try? await pool.runIfActive { Self.connect(host: host, port: port, timeoutMillis: 1000) }) ?? false
    }

    static func connect(host: String, port: Int, timeoutMillis: Int32) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return false }
        defer { freeaddrinfo(result) }
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            defer { ai = a.pointee.ai_next }
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return true }
            guard errno == EINPROGRESS else { continue }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, timeoutMillis) == 1 else { continue }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err == 0 { return true }
        }
        return false
    }
}
