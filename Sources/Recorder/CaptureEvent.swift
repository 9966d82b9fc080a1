import Media
import Ring

/// What the capture thread tells the recorder service.
public enum CaptureEvent: Sendable {
    /// The camera is open; `unusedOptions` are `[camera.options]` it ignored.
    case connected(StreamInfo, unusedOptions: [String])
    /// A segment file was created at `path`.
    case segmentStarted(SegmentOrigin, path: String)
    /// A segment file is complete and durable: index it.
    case segmentFinished(FinishedSegment)
    /// A segment could not be finished (disk full, I/O error); the file at `path` is left for
    /// the ring to cut back and index.
    case segmentFailed(path: String, MediaError)
    /// Activity is on but this camera's video cannot be decoded here: recorded without it.
    case activityUnavailable(String)
    /// The sub-stream activity decodes (`[activity] stream`) failed or came back; recording is
    /// not touched, and the activity index resumes when it returns.
    case activityStream(String)
    /// The connection ended (the service adds this after the runner returns, so the consumer sees
    /// it in order with the segments).
    case sessionEnded(MediaError)
    /// Packet statistics over the last interval; `durableUntil`: the end of the last whole
    /// fragment known to be on the card (what a power cut now would keep); `timelineLead`: how
    /// far the newest packet's footage time is ahead of its arrival, in seconds (the anchor of a
    /// connection is its first packet, which libavformat may have buffered while probing).
    case stats(fps: Double, bitrateKbps: Double, lastPacketAt: Timestamp, droppedPackets: Int, durableUntil: Timestamp?,
               timelineLead: Double)
}

/// Runs one connection to the camera, blocking, until it ends. Tests replace it.
public protocol CaptureRunner: Sendable {
    /// Returns only by throwing: `.cancelled` when `stop` was used, another code when the
    /// camera or the card failed.
    func runSession(stop: Interrupter, emit: @escaping @Sendable (CaptureEvent) -> Void) throws(MediaError)
}
