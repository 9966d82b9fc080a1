/// Where segments begin and end, as a state machine over packet facts (no I/O): the recorder
/// feeds it each packet and does what it answers.
///
/// - Nothing is written until the first video keyframe (RTSP may start mid-GOP and without
///   timestamps).
/// - A segment is cut on the first video keyframe at or after `targetSeconds` from its start,
///   so every segment starts on a keyframe and plays on its own.
/// - A camera whose keyframes are rarer than `maximumSeconds` still gets cut at the next
///   keyframe; it cannot be cut earlier without transcoding.
public struct SegmentCutter: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Drop the packet (before the first keyframe, or no timestamp).
        case drop
        /// Start the first segment with this packet.
        case start
        /// Close the open segment and start the next with this packet.
        case cut
        /// Write the packet to the open segment.
        case write
    }

    public var targetMicroseconds: Int64
    public private(set) var segmentStart: Int64?

    public init(targetSeconds: Int) {
        targetMicroseconds = Int64(targetSeconds) * 1_000_000
    }

    public mutating func decide(isVideo: Bool, isKeyframe: Bool, time: Int64?) -> Action {
        guard let time else { return .drop }
        guard let start = segmentStart else {
            guard isVideo && isKeyframe else { return .drop }
            segmentStart = time
            return .start
        }
        if isVideo && isKeyframe && time - start >= targetMicroseconds {
            segmentStart = time
            return .cut
        }
        return .write
    }

    /// Forget the open segment (the connection ended).
    public mutating func reset() { segmentStart = nil }
}
