/// Decode times for access units that RTP timestamps only by presentation time. Pictures arrive
/// in decode order; with B-frames their presentation times go back and forth (I0 P3 B1 B2 …), and
/// an MP4 needs a decode time for each that rises and is never after its presentation time.
///
/// The rule is libavformat's for the same streams: it keeps the largest `depth + 1` presentation
/// times seen, in order; each new one replaces the smallest, and the smallest after that is the
/// picture's decode time (a picture reordered by at most `depth` places cannot be presented
/// before it is decoded). The first `depth` pictures, before the window is full, are given times
/// one picture apart before the first one's. A stream reordered deeper than `depth` still gets
/// rising times; such pictures are counted in `tooDeep`.
public struct DecodeTimeline: Sendable {
    public let depth: Int
    /// The picture interval assumed before the stream shows one (90 kHz: 3600 is 25 a second).
    public let initialInterval: Int64
    /// The largest `depth + 1` presentation times, ascending; nil is "none yet" (below all).
    private var window: [Int64?]
    private var count = 0
    private var first: Int64?
    private var last: Int64?
    public private(set) var tooDeep = 0

    /// `depth` is bounded to 0–16 (H.264 and H.265 allow 16 reordered pictures). The default is
    /// the most, which any stream fits at the price of decode times 16 pictures early; the test
    /// camera's x264 stream (2 B-frames) needs 1, its x265 one 6. A stream's own bound is in its
    /// SPS (max_num_reorder_frames, sps_max_num_reorder_pics) for when the recorder reads it.
    public init(depth: Int = 16, initialInterval: Int64 = 3600) {
        self.depth = min(max(depth, 0), 16)
        self.initialInterval = max(1, initialInterval)
        window = Array(repeating: nil, count: self.depth + 1)
    }

    /// The decode time of the next picture, presented at `pts`.
    public mutating func decodeTime(pts: Int64) -> Int64 {
        defer { count += 1 }
        if first == nil { first = pts }
        window[0] = pts
        var i = 0
        while i < depth, let a = window[i], window[i + 1] == nil || a > window[i + 1]! {
            window.swapAt(i, i + 1)
            i += 1
        }
        var dts = window[0] ?? (first! &- Int64(depth - min(count, depth)) &* initialInterval)
        if let last, dts <= last { dts = last &+ 1 }
        if dts > pts { tooDeep += 1 }
        last = dts
        return dts
    }
}
