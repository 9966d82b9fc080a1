/// RTSP over TCP (RFC 2326 §10.12): RTSP answers and `$`-framed RTP/RTCP packets share one byte
/// stream. The reader is fed whatever a large read returned (64 KiB at a time, where FFmpeg
/// reads each frame with a poll and three small recvs) and hands back every whole item in it.
///
/// Bounds: a frame is at most 65 535 bytes by its 16-bit length; the buffer holds at most one
/// RTSP head or body more than that; bytes that are neither a frame nor an answer (a camera's
/// stray padding, a torn frame after a reconnect) are skipped up to the next `$` or `RTSP/`,
/// counted in `skippedBytes`, never taken as a length.
public struct InterleavedReader: Sendable {
    public enum Item: Sendable, Equatable {
        case response(RTSPResponse)
        /// One frame of an interleaved channel (even: RTP, odd: RTCP, by SETUP's `interleaved=`).
        case frame(channel: UInt8, payload: [UInt8])
    }

    public static let maxBuffered = RTSPResponse.maxHeadBytes + RTSPResponse.maxBodyBytes + 65_535 + 4
    private var buffer: [UInt8] = []
    private var start = 0
    public private(set) var skippedBytes = 0

    public init() {}

    /// Adds bytes read from the socket.
    public mutating func feed<C: Collection>(_ bytes: C) throws(RTSPError) where C.Element == UInt8 {
        if start > 0, start * 2 >= buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
        guard buffer.count - start <= Self.maxBuffered else {
            throw RTSPError("the camera sent \(buffer.count - start) bytes that are no whole frame or answer")
        }
    }

    /// The next whole item, or nil when more bytes are needed.
    public mutating func next() throws(RTSPError) -> Item? {
        while start < buffer.count {
            let b = buffer[start...]
            if buffer[start] == 0x24 {   // "$"
                guard b.count >= 4 else { return nil }
                let channel = buffer[start + 1]
                let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
                guard b.count >= 4 + length else { return nil }
                let payload = Array(buffer[(start + 4)..<(start + 4 + length)])
                start += 4 + length
                return .frame(channel: channel, payload: payload)
            }
            if b.starts(with: Self.rtspPrefix) {
                switch try RTSPResponse.parse(b) {
                case .incomplete: return nil
                case .response(let r, let consumed):
                    start += consumed
                    return .response(r)
                }
            }
            if b.count < Self.rtspPrefix.count, Self.rtspPrefix.starts(with: b) { return nil }
            // Neither: skip to the next byte that could start one.
            var i = start + 1
            while i < buffer.count, buffer[i] != 0x24, buffer[i] != 0x52 { i += 1 }   // "$", "R"
            skippedBytes &+= i - start
            start = i
        }
        return nil
    }

    static let rtspPrefix: [UInt8] = Array("RTSP/".utf8)
}
