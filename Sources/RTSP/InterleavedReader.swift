/// RTSP over TCP (RFC 2326 §10.12): RTSP answers and `$`-framed RTP/RTCP packets share one byte
/// stream. The socket is read straight into this reader's buffer (`receive`, 64 KiB at a time,
/// where FFmpeg reads each frame with a poll and three small recvs), and every whole item in it
/// is handed back as a slice of that buffer: no byte is copied between the socket and the
/// depacketizer.
///
/// Bounds: a frame is at most 65 535 bytes by its 16-bit length; the buffer holds at most one
/// RTSP head or body more than that (`maxBuffered`), allocated once; bytes that are neither a
/// frame nor an answer (a camera's stray padding, a torn frame after a reconnect) are skipped up
/// to the next `$` or `RTSP/`, counted in `skippedBytes`, never taken as a length.
public struct InterleavedReader: Sendable {
    public enum Item: Sendable, Equatable {
        case response(RTSPResponse)
        /// One frame of an interleaved channel (even: RTP, odd: RTCP, by SETUP's `interleaved=`),
        /// a slice of the reader's buffer: use it before the next `receive` or `feed`, or the
        /// buffer is copied when they write to it.
        case frame(channel: UInt8, payload: ArraySlice<UInt8>)
    }

    public static let maxBuffered = RTSPResponse.maxHeadBytes + RTSPResponse.maxBodyBytes + 65_535 + 4
    /// The most one `receive` asks the socket for.
    public static let readSize = 64 << 10
    /// Unread bytes are `buffer[start..<end]`.
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    public private(set) var skippedBytes = 0

    public init() {
        buffer = [UInt8](repeating: 0, count: Self.maxBuffered + Self.readSize)
    }

    /// Bytes read but not yet handed back.
    public var buffered: Int { end - start }

    /// Reads into the buffer's free space: `read` is given room for up to `readSize` bytes and
    /// returns how many it wrote (a recv's result: 0 or less writes nothing), which is returned.
    public mutating func receive(_ read: (UnsafeMutableRawBufferPointer) -> Int) throws(RTSPError) -> Int {
        guard end - start < Self.maxBuffered else {
            throw RTSPError("the camera sent \(end - start) bytes that are no whole frame or answer")
        }
        makeRoom(for: Self.readSize)
        let room = min(Self.readSize, Self.maxBuffered - (end - start))
        let (at, limit) = (end, buffer.count)
        let n = buffer.withUnsafeMutableBytes { all in
            read(UnsafeMutableRawBufferPointer(rebasing: all[at..<min(limit, at + room)]))
        }
        if n > 0 { end += min(n, room) }
        return n
    }

    /// Adds bytes (tests and fuzzing; the connection reads with `receive`).
    public mutating func feed<C: Collection>(_ bytes: C) throws(RTSPError) where C.Element == UInt8 {
        guard end - start + bytes.count <= Self.maxBuffered else {
            throw RTSPError("the camera sent \(end - start + bytes.count) bytes that are no whole frame or answer")
        }
        makeRoom(for: bytes.count)
        var i = end
        for b in bytes { buffer[i] = b; i += 1 }
        end = i
    }

    /// Moves the unread bytes to the front when fewer than `count` bytes are free behind them.
    private mutating func makeRoom(for count: Int) {
        if start == end { start = 0; end = 0 }
        guard buffer.count - end < count, start > 0 else { return }
        let (from, n) = (start, end - start)
        buffer.withUnsafeMutableBytes { b in
            b.baseAddress!.copyMemory(from: b.baseAddress! + from, byteCount: n)
        }
        start = 0
        end = n
    }

    /// The next whole item, or nil when more bytes are needed.
    public mutating func next() throws(RTSPError) -> Item? {
        while start < end {
            let b = buffer[start..<end]
            if buffer[start] == 0x24 {   // "$"
                guard b.count >= 4 else { return nil }
                let channel = buffer[start + 1]
                let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
                guard b.count >= 4 + length else { return nil }
                let payload = buffer[(start + 4)..<(start + 4 + length)]
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
            while i < end, buffer[i] != 0x24, buffer[i] != 0x52 { i += 1 }   // "$", "R"
            skippedBytes &+= i - start
            start = i
        }
        return nil
    }

    static let rtspPrefix: [UInt8] = Array("RTSP/".utf8)
}
