import CFFmpeg

/// One compressed packet read from a camera. Reused for every read: the recorder allocates one
/// and the input refills it, so the recording loop allocates nothing per packet.
public final class Packet {
    public enum Kind: Sendable { case video, audio, other }

    let raw: UnsafeMutablePointer<AVPacket>
    /// What the input knew about the packet's stream when it filled it.
    public internal(set) var kind: Kind = .other
    var timeBase = AVRational(num: 1, den: 90_000)

    public init() {
        guard let p = av_packet_alloc() else { fatalError("av_packet_alloc: out of memory") }
        raw = p
    }

    deinit {
        var p: UnsafeMutablePointer<AVPacket>? = raw
        av_packet_free(&p)
    }

    public var isKeyframe: Bool { raw.pointee.flags & AV_PKT_FLAG_KEY != 0 }
    public var isCorrupt: Bool { raw.pointee.flags & AV_PKT_FLAG_CORRUPT != 0 }
    public var size: Int { Int(raw.pointee.size) }
    public var hasTimestamps: Bool { raw.pointee.dts != cff_nopts_value() || raw.pointee.pts != cff_nopts_value() }

    /// Decode timestamp in microseconds of the camera's clock (nil when the packet has none).
    public var dtsMicroseconds: Int64? {
        let ts = raw.pointee.dts != cff_nopts_value() ? raw.pointee.dts : raw.pointee.pts
        guard ts != cff_nopts_value() else { return nil }
        return av_rescale_q(ts, timeBase, cff_time_base_q())
    }

    /// Duration in microseconds (0 when the camera does not say).
    public var durationMicroseconds: Int64 {
        av_rescale_q(raw.pointee.duration, timeBase, cff_time_base_q())
    }

    /// Releases the packet's data (the buffer is reused by the next read).
    public func reset() { av_packet_unref(raw) }
}
