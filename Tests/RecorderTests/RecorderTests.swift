import Foundation
import Logging
import Media
import Synchronization
import Testing
@testable import Recorder
@testable import Ring

@Suite struct BackoffTests {
    @Test func growsToCapWithJitter() {
        var b = Backoff(initial: 1, maximum: 30)
        let ceilings = (0..<8).map { _ -> Double in
            let step = b.currentStep
            let d = b.next(random: 0.999)
            #expect(d <= step && d >= step * 0.5)
            return step
        }
        #expect(ceilings == [1, 2, 4, 8, 16, 30, 30, 30])
        var c = Backoff()
        #expect(c.next(random: 0) == 0.5)
        c.reset()
        #expect(c.currentStep == 1)
    }
}

@Suite struct SegmentCutterTests {
    @Test func waitsForKeyframeThenCutsOnKeyframeAfterTarget() {
        var cut = SegmentCutter(targetSeconds: 10)
        #expect(cut.decide(isVideo: true, isKeyframe: false, time: 0) == .drop)
        #expect(cut.decide(isVideo: false, isKeyframe: true, time: 10_000) == .drop)
        #expect(cut.decide(isVideo: true, isKeyframe: true, time: nil) == .drop)
        #expect(cut.decide(isVideo: true, isKeyframe: true, time: 40_000) == .start)
        #expect(cut.decide(isVideo: false, isKeyframe: true, time: 10_050_000) == .write)
        // A keyframe before the target does not cut.
        #expect(cut.decide(isVideo: true, isKeyframe: true, time: 8_040_000) == .write)
        // A non-keyframe after the target does not cut either.
        #expect(cut.decide(isVideo: true, isKeyframe: false, time: 10_080_000) == .write)
        #expect(cut.decide(isVideo: true, isKeyframe: true, time: 12_040_000) == .cut)
        #expect(cut.segmentStart == 12_040_000)
        cut.reset()
        #expect(cut.decide(isVideo: true, isKeyframe: false, time: 13_000_000) == .drop)
    }
}

/// A clock whose sleeps return at once and are remembered.
final class InstantSleeper: Clock, @unchecked Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by d: Duration) -> Instant { Instant(offset: offset + d) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }
    private let lock = Mutex<(Instant, [Duration])>((Instant(offset: .zero), []))
    var now: Instant { lock.withLock { $0.0 } }
    var minimumResolution: Duration { .zero }
    var sleeps: [Duration] { lock.withLock { $0.1 } }
    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        lock.withLock {
            $0.1.append(deadline.offset - $0.0.offset)
            $0.0 = deadline
        }
        try Task.checkCancellation()
        await Task.yield()
    }
}

struct FixedClock: HostClock {
    let bootID = "boot-test"
    func now() -> Timestamp { Timestamp(rfc3339: "2026-11-29T10:00:30Z")! }
    func monotonicNanos() -> Int64 { 5_000_000_000 }
    func isSynchronized() -> Bool { true }
}

/// A camera that plays a script of sessions: each emits its events, then fails (or, last,
/// waits to be stopped).
struct FakeCapture: CaptureRunner {
    enum Step: Sendable { case segment(Timestamp, seconds: Double), fail(MediaError.Code), stats }
    let sessions: [[Step]]
    final class Counter: Sendable { let value = Atomic<Int>(0) }
    let count = Counter()

    func runSession(stop: Interrupter, emit: @escaping @Sendable (CaptureEvent) -> Void) throws(MediaError) {
        let n = count.value.add(1, ordering: .relaxed).oldValue
        guard n < sessions.count else {
            while !stop.isStopped { usleep(2000) }
            throw MediaError(code: .cancelled, call: "fake", target: "fake", message: "stopped")
        }
        if case .fail? = sessions[n].first {} else {
            emit(.connected(StreamInfo(videoCodec: "h264", width: 1920, height: 1080, fps: 25), unusedOptions: ["bogus"]))
        }
        for step in sessions[n] {
            switch step {
            case .segment(let start, let seconds):
                let o = SegmentOrigin(camera: "cam1", start: start, monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
                emit(.segmentStarted(o, path: "/x"))
                emit(.segmentFinished(FinishedSegment(path: "/tmp/\(start.compact).mp4", origin: o, bytes: 1000,
                                                      sha256: String(repeating: "a", count: 64), durationSeconds: seconds)))
            case .fail(let code):
                throw MediaError(code: code, call: "fake", target: "fake", message: "fake \(code.rawValue)")
            case .stats:
                emit(.stats(fps: 25, bitrateKbps: 4000, lastPacketAt: FixedClock().now(), droppedPackets: 0, durableUntil: nil, timelineLead: 0))
            }
        }
        while !stop.isStopped { usleep(2000) }
        throw MediaError(code: .cancelled, call: "fake", target: "fake", message: "stopped")
    }
}

@Suite struct RecorderServiceTests {
    @Test func reconnectsWithBackoffAndRecordsTheGap() async throws {
        let root = NSTemporaryDirectory() + "rec-test-" + UUID().uuidString
        let ring = try await Ring.open(.init(root: root, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        let t0 = Timestamp(rfc3339: "2026-11-29T10:00:00Z")!
        let capture = FakeCapture(sessions: [
            [.segment(t0, seconds: 4), .fail(.timedOut)],
            [.fail(.unavailable)],
            [.fail(.unavailable)],
            [.segment(t0 + 20, seconds: 4)],
        ])
        let sleeper = InstantSleeper()
        let service = RecorderService(
            configuration: .init(device: "d", cameraID: "cam1", cameraURL: "rtsp://fake", statusPath: root + "/status.json"),
            ring: ring, runner: capture, clock: FixedClock(), sleeper: sleeper, logger: Logger(label: "t"))
        let task = Task { try await service.run() }
        // Wait (bounded) until the fourth session has recorded.
        for _ in 0..<500 {
            if service.health.segmentsWritten == 2 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        task.cancel()
        try await task.value

        let segments = try await ring.segments()
        #expect(segments.map(\.start) == [t0, t0 + 20])
        let gaps = try await ring.gaps()
        #expect(gaps.count == 1)
        #expect(gaps.first?.start == t0 + 4 && gaps.first?.end == t0 + 20)
        #expect(gaps.first?.reason == "fake timedOut")
        let health = service.health
        #expect(health.reconnects == 3)
        #expect(health.gaps == 1)
        #expect(health.segmentsWritten == 2)
        #expect(health.unusedCameraOptions == ["bogus"])
        #expect(health.state == .stopped)
        // Backoff: reset after a session that recorded, then 1 s, 2 s, 4 s ceilings with jitter.
        let s = sleeper.sleeps.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        #expect(s.count == 3)
        #expect(s[0] >= 0.5 && s[0] <= 1)
        #expect(s[1] >= 1 && s[1] <= 2)
        #expect(s[2] >= 2 && s[2] <= 4)
        let status = try JSONDecoder().decode(RecorderHealth.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/status.json")))
        #expect(status.state == .stopped && status.segmentsWritten == 2)
        await ring.close()
    }
}

/// A datagram socket standing in for systemd's notification socket.
final class NotifySocket: @unchecked Sendable {
    let path = NSTemporaryDirectory() + "notify-" + UUID().uuidString.prefix(8)
    let fd: Int32

    init() {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Messages received within `seconds` (bounded), read on a thread of its own so the
    /// blocking recv does not hold a thread of the shared concurrency pool.
    /// Stops early once `until` holds for what arrived.
    func collect(seconds: Double, until: @escaping @Sendable ([String]) -> Bool = { _ in false }) async -> [String] {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: self.receive(seconds: seconds, until: until)) }
        }
    }

    private func receive(seconds: Double, until: ([String]) -> Bool) -> [String] {
        var out: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline && !until(out) {
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { out.append(String(decoding: buf[0..<n], as: UTF8.self)) }
        }
        return out
    }

    deinit { close(fd); unlink(path) }
}

@Suite struct SystemdNotifyTests {
    func service(_ capture: FakeCapture, notify: NotifySocket, root: String) async throws -> (RecorderService, Ring) {
        let ring = try await Ring.open(.init(root: root, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var config = RecorderService.Configuration(device: "d", cameraID: "cam1", cameraURL: "rtsp://fake", statusPath: nil)
        config.notifier = SystemdNotifier(socketPath: notify.path, watchdogSeconds: 1)
        config.statusInterval = .milliseconds(50)
        // Real, short waits: a camera that fails at once must not spin the loop.
        config.backoff = Backoff(initial: 0.02, maximum: 0.05)
        return (RecorderService(configuration: config, ring: ring, runner: capture, clock: FixedClock(),
                                sleeper: ContinuousClock(), logger: Logger(label: "t")), ring)
    }

    @Test func readyAndWatchdogOnlyWhileRecording() async throws {
        let notify = NotifySocket()
        let t0 = Timestamp(rfc3339: "2026-11-29T10:00:00Z")!
        let (svc, ring) = try await service(FakeCapture(sessions: [[.segment(t0, seconds: 4), .stats]]), notify: notify,
                                            root: NSTemporaryDirectory() + "notify-" + UUID().uuidString)
        let task = Task { try await svc.run() }
        let messages = await notify.collect(seconds: 10) { m in m.contains("WATCHDOG=1") && m.contains("READY=1") && m.contains { $0.hasPrefix("STATUS=recording") } }
        task.cancel()
        try await task.value
        #expect(messages.filter { $0 == "READY=1" }.count == 1, "\(messages)")
        #expect(messages.contains("WATCHDOG=1"))
        #expect(messages.contains { $0.hasPrefix("STATUS=recording h264 1920x1080") })
        await ring.close()
    }

    @Test func noWatchdogWhileTheCameraIsDown() async throws {
        let notify = NotifySocket()
        let down = FakeCapture(sessions: Array(repeating: [.fail(.unavailable)], count: 10_000))
        let (svc, ring) = try await service(down, notify: notify, root: NSTemporaryDirectory() + "notify-" + UUID().uuidString)
        let task = Task { try await svc.run() }
        // Several status rounds with the camera down (bounded).
        let messages = await notify.collect(seconds: 10) { $0.filter { $0.hasPrefix("STATUS=not recording: fake unavailable") }.count >= 5 }
        task.cancel()
        try await task.value
        #expect(!messages.contains("READY=1") && !messages.contains("WATCHDOG=1"), "\(messages)")
        #expect(messages.contains { $0.hasPrefix("STATUS=not recording: fake unavailable") }, "\(messages)")
        await ring.close()
    }
}
