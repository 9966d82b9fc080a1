/// Junction's own RTSP client (issue 25, item 3), its pure half: what a camera sends over the
/// TCP connection, read from bytes already received, with no I/O. Every length, count and header
/// from the camera is bounded here, where it is decoded (README, "Limits").
///
/// An RTSP response (RFC 2326 §7): a status line, headers, and a body of `Content-Length` bytes
/// (the SDP of a DESCRIBE). Header names are matched without regard to case; a header given
/// twice keeps both values (WWW-Authenticate often is).
public struct RTSPResponse: Sendable, Equatable {
    public static let maxHeadBytes = 16 << 10
    public static let maxHeaders = 64
    public static let maxBodyBytes = 64 << 10

    public var status: Int
    public var reason: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public static func == (a: RTSPResponse, b: RTSPResponse) -> Bool {
        a.status == b.status && a.reason == b.reason && a.body == b.body
            && a.headers.map { "\($0.name):\($0.value)" } == b.headers.map { "\($0.name):\($0.value)" }
    }

    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    /// Every value of header `name` (any case), in order.
    public func headers(_ name: String) -> [String] { headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value) }
    /// `CSeq`, when it is a number.
    public var cseq: Int? { header("CSeq").flatMap { Int($0) } }

    public enum Parse: Equatable {
        /// More bytes are needed.
        case incomplete
        /// A whole response, and how many bytes of the input it took.
        case response(RTSPResponse, consumed: Int)
    }

    /// Reads one response from the start of `bytes`.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(RTSPError) -> Parse {
        guard let (end, separator) = headEnd(bytes) else {
            if bytes.count > maxHeadBytes { throw RTSPError("the camera's answer has a head over \(maxHeadBytes) bytes") }
            return .incomplete
        }
        let headLength = end - bytes.startIndex
        guard headLength <= maxHeadBytes else { throw RTSPError("the camera's answer has a head over \(maxHeadBytes) bytes") }
        // Lines split on LF bytes (a String would keep CRLF together as one character).
        var lines = bytes[bytes.startIndex..<end].split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)[...]
        }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "RTSP/1.0", parts[1].count == 3, let status = Int(parts[1]), (100...599).contains(status) else {
            throw RTSPError("the camera's answer does not start with an RTSP/1.0 status line: \"\(printable(statusLine.prefix(60)))\"")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                // A folded line continues the header before it.
                headers[headers.count - 1].value += " " + line.trimmingSpacesAndTabs
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { throw RTSPError("the camera sent a header line without a colon: \"\(printable(line.prefix(60)))\"") }
            guard headers.count < maxHeaders else { throw RTSPError("the camera's answer has more than \(maxHeaders) headers") }
            headers.append((String(line[..<colon]).trimmingSpacesAndTabs, String(line[line.index(after: colon)...]).trimmingSpacesAndTabs))
        }
        var response = RTSPResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: [])
        var length = 0
        if let text = response.header("Content-Length") {
            guard let n = Int(text), n >= 0 else { throw RTSPError("the camera sent Content-Length \"\(printable(text.prefix(20)))\", not a length") }
            guard n <= maxBodyBytes else { throw RTSPError("the camera's answer has a body of \(n) bytes (at most \(maxBodyBytes))") }
            length = n
        }
        let bodyStart = end + separator
        guard bytes.endIndex - bodyStart >= length else { return .incomplete }
        response.body = Array(bytes[bodyStart..<(bodyStart + length)])
        return .response(response, consumed: bodyStart + length - bytes.startIndex)
    }

    /// Where the head ends (the first CRLFCRLF, or a bare LFLF) and the separator's length,
    /// looked for within the head bound only.
    static func headEnd(_ b: ArraySlice<UInt8>) -> (Int, Int)? {
        var i = b.startIndex
        let limit = min(b.endIndex, b.startIndex + maxHeadBytes + 4)
        while i < limit - 1 {
            if b[i] == 0x0A, b[i + 1] == 0x0A { return (i, 2) }
            if i + 3 < limit, b[i] == 0x0D, b[i + 1] == 0x0A, b[i + 2] == 0x0D, b[i + 3] == 0x0A { return (i, 4) }
            i += 1
        }
        return nil
    }
}

/// What went wrong reading the camera: said for the technician, never a trap.
public struct RTSPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure, for the caller to act on (never the message's words).
    public enum Kind: Sendable, Equatable {
        /// The camera sent something this client does not take (most errors).
        case invalid
        case stopped, stalled, closed, unreachable, unauthenticated
    }
    public var kind: Kind
    public var message: String
    public init(_ message: String, kind: Kind = .invalid) {
        self.message = message
        self.kind = kind
    }
    public var description: String { message }
}

/// Text from the camera as it may be shown: control characters as `\u{…}`.
func printable<S: StringProtocol>(_ s: S) -> String {
    var out = ""
    for u in s.unicodeScalars { out += u.value < 0x20 || u.value == 0x7F ? "\\u{\(String(u.value, radix: 16))}" : String(u) }
    return out
}

extension StringProtocol {
    var trimmingSpacesAndTabs: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
