import Activity
import CFFmpeg
import Dispatch
import Synchronization

/// The activity index's side of a camera session (issue 14), off the capture thread: the
/// recorder offers each video keyframe and marks where each segment begins and ends, and never
/// waits. A serial queue decodes keyframes (`KeyframeDecoder`), compares them with the
/// background (`ActivityDetector`) and adds them to the open segment's summary. When the
/// decoder falls behind, keyframes are dropped (counted), never the segment marks; a segment's
/// summary is ready once the queue has passed its end mark (`PendingActivity`).
public final class ActivityWorker: @unchecked Sendable {
    /// Keyframes waiting at most: past this a new one is dropped (a 1080p keyframe decodes in
    /// tens of milliseconds; a keyframe comes every second or two).
    public static let maxPendingKeyframes = 2

    private let queue = DispatchQueue(label: "junction.activity")
    // Touched only on `queue` (set again when a sub-stream reconnects):
    private var decoder: KeyframeDecoder?
    // Touched only on `queue`:
    private var detector: ActivityDetector
    private var open: (start: Int64, found: SegmentActivity)?
    private let state = Mutex<(pending: Int, dropped: Int, decoded: Int, failures: Int)>((0, 0, 0, 0))

    /// For the stream `input` records (its video); throws when it cannot be decoded here.
    public init(input: any CameraSource, detector: ActivityDetector = ActivityDetector()) throws(MediaError) {
        decoder = try input.withRecordedStreams { (streams) throws(MediaError) in
            guard let video = streams.first else {
                throw MediaError(code: .noVideo, call: "activity", target: input.displayURL, message: "no video")
            }
            return try KeyframeDecoder(codecpar: video.pointee.codecpar, target: input.displayURL)
        }
        self.detector = detector
    }

    /// For a stream opened later (the camera's sub-stream, `use(_:)` when it connects): until
    /// then keyframes offered are dropped.
    public init(detector: ActivityDetector = ActivityDetector()) {
        decoder = nil
        self.detector = detector
    }

    /// Decodes `input`'s video from now on (a sub-stream that connected, or reconnected with
    /// other parameters).
    public func use(_ input: any CameraSource) throws(MediaError) {
        let made = try input.withRecordedStreams { (streams) throws(MediaError) in
            guard let video = streams.first else {
                throw MediaError(code: .noVideo, call: "activity", target: input.displayURL, message: "no video")
            }
            return try KeyframeDecoder(codecpar: video.pointee.codecpar, target: input.displayURL)
        }
        let box = DecoderBox(made)
        queue.async { [self] in decoder = box.decoder }
    }

    /// Keyframes decoded, dropped because the decoder was behind, and refused by the decoder.
    public var counts: (decoded: Int, dropped: Int, failures: Int) {
        state.withLock { ($0.decoded, $0.dropped, $0.failures) }
    }

    /// Offers a packet read at camera time `microseconds`: video keyframes are taken, the rest
    /// ignored (never blocks).
    public func offer(_ packet: Packet, microseconds: Int64) {
        guard packet.isKeyframe, packet.kind == .video else { return }
        let take = state.withLock { s -> Bool in
            guard s.pending < Self.maxPendingKeyframes else { s.dropped += 1; return false }
            s.pending += 1
            return true
        }
        guard take, let copy = av_packet_clone(packet.raw) else { return }
        let box = PacketBox(copy)
        queue.async { [self] in
            defer { state.withLock { $0.pending -= 1 } }
            do {
                guard let decoder else { throw MediaError(code: .noVideo, call: "activity", target: "", message: "no decoder yet") }
                let picture = try decoder.grey(box.packet)
                let o = detector.observe(picture, microseconds: microseconds)
                state.withLock { $0.decoded += 1 }
                if let start = open?.start {
                    open?.found.add(o, secondsIntoSegment: Double(microseconds - start) / 1e6)
                }
            } catch {
                state.withLock { $0.failures += 1 }
            }
        }
    }

    /// A segment begins at camera time `microseconds`: keyframes from here on are its.
    public func beginSegment(atMicroseconds microseconds: Int64) {
        queue.async { [self] in open = (microseconds, SegmentActivity()) }
    }

    /// The open segment ends here: its summary, once every keyframe offered before is counted.
    public func endSegment() -> PendingActivity {
        let pending = PendingActivity()
        queue.async { [self] in
            pending.complete(open?.found)
            open = nil
        }
        return pending
    }
}

/// A decoder handed to the queue.
private final class DecoderBox: @unchecked Sendable {
    let decoder: KeyframeDecoder
    init(_ d: KeyframeDecoder) { decoder = d }
}

/// A cloned packet owned by one queued decode (freed with it).
private final class PacketBox: @unchecked Sendable {
    var packet: UnsafeMutablePointer<AVPacket>
    init(_ p: UnsafeMutablePointer<AVPacket>) { packet = p }
    deinit {
        var p: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&p)
    }
}
