import Synchronization

/// A segment's activity summary, ready once the worker has passed the segment's end.
public final class PendingActivity: Sendable {
    private let state = Mutex<(done: Bool, summary: ActivitySummary?)>((false, nil))

    public init() {}

    public func complete(_ summary: ActivitySummary?) { state.withLock { $0 = (true, summary) } }

    /// Ready now (`done`), and the summary (nil when no keyframe came, or the worker stopped).
    public var current: (done: Bool, summary: ActivitySummary?) { state.withLock { $0 } }

    /// Waits (polling every 20 ms, at most `timeout`) for the summary; nil when it did not come.
    public func value(timeout: Duration = .seconds(2)) async -> ActivitySummary? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let c = current
            if c.done { return c.summary }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
