/// An RTSP request as the client writes it, and the two answers' headers it must read back:
/// `Session` (its id and timeout: keep-alives go at half of it) and `Transport` (the interleaved
/// channels the camera chose).
public struct RTSPRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]

    public init(method: String, url: String, headers: [(name: String, value: String)] = []) {
        self.method = method
        self.url = url
        self.headers = headers
    }

    public static func == (a: RTSPRequest, b: RTSPRequest) -> Bool {
        a.method == b.method && a.url == b.url && a.headers.map { "\($0.name):\($0.value)" } == b.headers.map { "\($0.name):\($0.value)" }
    }

    /// The bytes on the wire, with `CSeq` first. A CR or LF inside any part is dropped: nothing
    /// taken from a camera or a config can add a header line.
    public func bytes(cseq: Int) -> [UInt8] {
        func clean(_ s: String) -> String { String(s.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.map(Character.init)) }
        var s = "\(clean(method)) \(clean(url)) RTSP/1.0\r\nCSeq: \(cseq)\r\n"
        for (name, value) in headers { s += "\(clean(name)): \(clean(value))\r\n" }
        return Array((s + "\r\n").utf8)
    }
}

/// `Session: 12345678;timeout=60` (RFC 2326 §12.37).
public struct RTSPSession: Sendable, Equatable {
    /// When the camera names none.
    public static let defaultTimeout = 60
    public static let timeouts = 1...3600

    public var id: String
    public var timeoutSeconds: Int

    public init(header: String) throws(RTSPError) {
        let parts = header.split(separator: ";", omittingEmptySubsequences: false)
        let id = parts.first.map { $0.trimmingSpacesAndTabs } ?? ""
        guard (1...256).contains(id.utf8.count), id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw RTSPError("the camera sent a Session id \"\(printable(id.prefix(40)))\" that is not one (1–256 visible characters)")
        }
        self.id = id
        timeoutSeconds = Self.defaultTimeout
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingSpacesAndTabs.lowercased() == "timeout", let t = Int(kv[1].trimmingSpacesAndTabs) {
                // A timeout outside 1–3600 s is taken as its nearest end: keep-alives go at half of it.
                timeoutSeconds = min(max(t, Self.timeouts.lowerBound), Self.timeouts.upperBound)
            }
        }
    }
}

/// The `Transport` a SETUP answer carries, for RTP over the RTSP connection:
/// `RTP/AVP/TCP;unicast;interleaved=0-1`.
public struct RTSPTransport: Sendable, Equatable {
    public var rtpChannel: UInt8
    public var rtcpChannel: UInt8

    /// What the client asks for a track: the channels `2n` and `2n+1`.
    public static func request(track: Int) -> String {
        "RTP/AVP/TCP;unicast;interleaved=\(2 * track)-\(2 * track + 1)"
    }

    public init(header: String) throws(RTSPError) {
        guard header.uppercased().hasPrefix("RTP/AVP/TCP") else {
            throw RTSPError("the camera answered SETUP with transport \"\(printable(header.prefix(60)))\", not RTP over the RTSP connection (TCP)")
        }
        for p in header.split(separator: ";") {
            let kv = p.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].trimmingSpacesAndTabs.lowercased() == "interleaved" else { continue }
            let ch = kv[1].split(separator: "-")
            guard let a = ch.first.flatMap({ UInt8($0.trimmingSpacesAndTabs) }) else { break }
            rtpChannel = a
            rtcpChannel = ch.count > 1 ? UInt8(ch[1].trimmingSpacesAndTabs) ?? a &+ 1 : a &+ 1
            return
        }
        throw RTSPError("the camera answered SETUP without the interleaved channels (\"\(printable(header.prefix(60)))\")")
    }
}
