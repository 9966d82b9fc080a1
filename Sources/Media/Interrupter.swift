import CFFmpeg
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Deadlines and stop requests for blocking FFmpeg calls, through `AVIOInterruptCB`.
///
/// libavformat's own RTSP `timeout` fires late or not at all; its network code instead polls the
/// interrupt callback every ~100 ms. The reader re-arms the deadline before each blocking call;
/// any thread may call `stop()`.
public final class Interrupter: Sendable {
    private let deadline = Atomic<Int64>(0)
    private let stopped = Atomic<Bool>(false)
    private let firedFlag = Atomic<Bool>(false)

    public init() {}

    /// Makes every blocking call on inputs using this interrupter return as soon as it can.
    public func stop() { stopped.store(true, ordering: .relaxed) }
    public var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Arms a deadline `seconds` from now (monotonic clock) and clears the "fired" flag.
    public func arm(seconds: Double) {
        firedFlag.store(false, ordering: .relaxed)
        deadline.store(Self.nowNanos() + Int64(seconds * 1e9), ordering: .relaxed)
    }

    /// Whether the last blocking call was cut short by the deadline (FFmpeg does not always
    /// say so: an interrupted RTSP open returns AVERROR_INVALIDDATA).
    public var fired: Bool { firedFlag.load(ordering: .relaxed) }

    func shouldInterrupt() -> Bool {
        if stopped.load(ordering: .relaxed) { return true }
        let d = deadline.load(ordering: .relaxed)
        if d != 0 && Self.nowNanos() > d {
            firedFlag.store(true, ordering: .relaxed)
            return true
        }
        return false
    }

    static func nowNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The C callback: `opaque` is an unretained `Interrupter` kept alive by its input.
    static let callback: @convention(c) (UnsafeMutableRawPointer?) -> Int32 = { opaque in
        guard let opaque else { return 0 }
        return Unmanaged<Interrupter>.fromOpaque(opaque).takeUnretainedValue().shouldInterrupt() ? 1 : 0
    }
}
