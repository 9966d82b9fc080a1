import Synchronization

/// What the activity worker found in one segment: the summary the index keeps and seals, and
/// each keyframe's moved cells, which only the motion trigger reads (never stored).
public struct SegmentActivity: Sendable, Equatable {
    public struct Keyframe: Sendable, Equatable {
        public var secondsIntoSegment: Double
        public var cells: CellMask
        public var lighting: Bool

        public init(secondsIntoSegment: Double, cells: CellMask, lighting: Bool = false) {
            self.secondsIntoSegment = secondsIntoSegment
            self.cells = cells
            self.lighting = lighting
        }
    }

    public var summary: ActivitySummary
    /// At most `ActivitySummary.maxEntries`; past it the rest are not kept.
    public var keyframes: [Keyframe]

    public init(summary: ActivitySummary = ActivitySummary(), keyframes: [Keyframe] = []) {
        self.summary = summary
        self.keyframes = keyframes
    }

    public mutating func add(_ o: Observation, secondsIntoSegment seconds: Double) {
        summary.add(o, secondsIntoSegment: seconds)
        if keyframes.count < ActivitySummary.maxEntries {
            keyframes.append(Keyframe(secondsIntoSegment: max(0, seconds), cells: o.cells, lighting: o.lighting))
        }
    }
}

/// A segment's activity, ready once the worker has passed the segment's end.
public final class PendingActivity: Sendable {
    private let state = Mutex<(done: Bool, result: SegmentActivity?)>((false, nil))

    public init() {}

    public func complete(_ result: SegmentActivity?) { state.withLock { $0 = (true, result) } }

    /// Ready now (`done`), and what was found (nil when no keyframe came, or the worker stopped).
    public var current: (done: Bool, result: SegmentActivity?) { state.withLock { $0 } }

    /// Waits (polling every 20 ms, at most `timeout`) for the result; nil when it did not come.
    public func value(timeout: Duration = .seconds(2)) async -> SegmentActivity? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let c = current
            if c.done { return c.result }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
