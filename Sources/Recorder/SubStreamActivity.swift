import Dispatch
import Media
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The activity index fed from the camera's sub-stream (`[activity] stream`, issue 14): a
/// 640×360 keyframe decodes in a few milliseconds where the recorded 1080p one takes ~13, so
/// activity costs a fraction of the recorder's CPU instead of doubling it. A thread of its own
/// (an `NIOThreadPool` of one) reads the sub-stream and offers its keyframes to the worker, timed on the recorded stream's
/// timeline (the recorder marks camera time against the monotonic clock about once a second;
/// both streams come from the same camera at the same moment, so the error is the two streams'
/// latency difference, well under a keyframe interval). The sub-stream never touches the
/// recording: when it fails, the activity index waits for it and it is retried with backoff.
final class SubStreamActivity: @unchecked Sendable {
    let worker = ActivityWorker()
    private let options: CameraInput.Options
    private let clock: any HostClock
    private let interrupter = Interrupter()
    private let done = DispatchSemaphore(value: 0)
    private let pool = NIOThreadPool(numberOfThreads: 1)
    /// The recorded stream's camera time `micros` was at monotonic `nanos`.
    private let anchor = Mutex<(nanos: Int64, micros: Int64)?>(nil)
    private let emit: @Sendable (CaptureEvent) -> Void

    init(options: CameraInput.Options, clock: any HostClock, emit: @escaping @Sendable (CaptureEvent) -> Void) {
        self.options = options
        self.clock = clock
        self.emit = emit
        // A pool of one, as the capture loop's: the sub-stream's blocking reads get a thread of
        // their own and never hold one of NIO's.
        pool.start()
        pool.submit { [self] _ in
            run()
            done.signal()
        }
    }

    /// The recorded stream is at camera time `micros` now.
    func mark(micros: Int64) {
        let now = clock.monotonicNanos()
        anchor.withLock { $0 = (now, micros) }
    }

    /// Stops reading (a blocking read returns at once) and waits for the thread.
    func stop() {
        interrupter.stop()
        done.wait()
        pool.shutdownGracefully { _ in }
    }

    private func run() {
        var wait = 1.0
        var lastProblem: String?
        while !interrupter.isStopped {
            do throws(MediaError) {
                // The same reader as the recorded stream (`[camera] reader`): with Junction's
                // own, the sub-stream is a second RTSP session of the box's client, its keyframes
                // handed to the decoder without a libavformat session (issue 25).
                let input = try openCamera(options, interrupter: interrupter, audio: false)
                try worker.use(input)
                if lastProblem != nil { emit(.activityStream("\(options.displayURL) is back")) }
                lastProblem = nil
                wait = 1
                let packet = Packet()
                while !interrupter.isStopped {
                    try input.read(into: packet)
                    guard packet.kind == .video, packet.isKeyframe, let a = anchor.withLock({ $0 }) else { continue }
                    worker.offer(packet, microseconds: a.micros + (clock.monotonicNanos() - a.nanos) / 1000)
                }
            } catch {
                if interrupter.isStopped { return }
                let why = "\(options.displayURL): \(error.message)"
                if why != lastProblem { emit(.activityStream("cannot be read (\(why)); the activity index waits for it, recording goes on")) }
                lastProblem = why
            }
            // Backoff, 1 s to 30 s, in steps that notice a stop.
            let until = ContinuousClock.now + .milliseconds(Int64(wait * 1000))
            while !interrupter.isStopped, ContinuousClock.now < until { usleep(100_000) }
            wait = min(30, wait * 2)
        }
    }
}
