import Activity
import Config
import Logging
import Media
import NIOPosix
import Ring
import ServiceLifecycle
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The capture service: keeps a connection to the camera, turns its packets into segments in the
/// ring, reconnects with capped exponential backoff, records each outage as a gap, keeps the
/// ring within budget, and publishes its health.
///
/// The camera connection runs on a thread of its own (`NIOThreadPool` of one): FFmpeg reads and
/// fsync block. The service itself only awaits.
public final class RecorderService: Service, Sendable {
    public struct Configuration: Sendable {
        public var device: String
        public var cameraID: String
        public var cameraURL: String
        /// Where `status.json` is written (nil: not written).
        public var statusPath: String?
        public var statusInterval: Duration = .seconds(2)
        public var backoff = Backoff()
        /// systemd's notification socket, when run by systemd.
        public var notifier: SystemdNotifier?
        /// No packet for this long: the watchdog is not fed.
        public var stallSeconds: Double = 5
        /// Motion flags from the activity index, and the local time their schedule is read in.
        public var motion: (rules: MotionRules, localTime: LocalTime)?

        public init(device: String, cameraID: String, cameraURL: String, statusPath: String?) {
            self.device = device
            self.cameraID = cameraID
            self.cameraURL = cameraURL
            self.statusPath = statusPath
        }
    }

    let configuration: Configuration
    let ring: Ring
    let runner: any CaptureRunner
    let clock: any HostClock
    let sleeper: any Clock<Duration>
    let probe: (any CameraProbe)?
    let logger: Logger
    let interrupter = Interrupter()
    let state: Mutex<RecorderHealth>
    /// The motion trigger, touched only by the event consumer.
    private let motion: Mutex<MotionTrigger?>
    /// Camera failure waiting to be written as a gap when recording resumes.
    private let pendingGapReason = Mutex<String?>(nil)

    public init(configuration: Configuration, ring: Ring, runner: any CaptureRunner, clock: any HostClock = SystemClock(),
                sleeper: any Clock<Duration> = ContinuousClock(), probe: (any CameraProbe)? = nil, logger: Logger) {
        self.configuration = configuration
        self.ring = ring
        self.runner = runner
        self.clock = clock
        self.sleeper = sleeper
        self.probe = probe
        self.logger = logger
        var h = RecorderHealth(device: configuration.device, cameraID: configuration.cameraID,
                               cameraURL: configuration.cameraURL, now: clock.now())
        h.pid = getpid()
        h.bootID = clock.bootID
        if let m = configuration.motion { h.motion = MotionHealth(capSeconds: m.rules.maxPinSecondsPerHour) }
        state = Mutex(h)
        motion = Mutex(configuration.motion.map { MotionTrigger(rules: $0.rules) })
    }

    /// The health as it is now.
    public var health: RecorderHealth { state.withLock { $0 } }

    public func run() async throws {
        let (events, continuation) = AsyncStream.makeStream(of: CaptureEvent.self, bufferingPolicy: .unbounded)
        let capturePool = NIOThreadPool(numberOfThreads: 1)
        capturePool.start()
        defer { capturePool.shutdownGracefully { _ in } }
        await rememberMotionFlags()
        if let latest = try? await ring.latest(camera: configuration.cameraID) {
            pendingGapReason.withLock { $0 = $0 ?? "the recorder was not running" }
            lastEnd.withLock { $0 = latest.end }
        }
        await withGracefulShutdownHandler {
            defer { configuration.notifier?.send("STOPPING=1") }
            await withTaskCancellationHandler {
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.consume(events) }
                    group.addTask { await self.publishStatus() }
                    await self.connectLoop(pool: capturePool, continuation: continuation)
                    continuation.finish()
                    self.update { $0.state = .stopped }
                }
            } onCancel: {
                self.interrupter.stop()
            }
        } onGracefulShutdown: {
            self.logger.info("recorder: stopping, closing the open segment")
            self.interrupter.stop()
        }
        writeStatus()
        logger.info("recorder: stopped")
    }

    private let lastEnd = Mutex<Timestamp?>(nil)
    private let recordedSinceFailure = Atomic<Bool>(false)

    func update(_ body: (inout RecorderHealth) -> Void) {
        state.withLock {
            body(&$0)
            $0.updatedAt = clock.now()
        }
    }

    /// Connect, record until the camera fails, wait, reconnect; until asked to stop.
    func connectLoop(pool: NIOThreadPool, continuation: AsyncStream<CaptureEvent>.Continuation) async {
        var backoff = configuration.backoff
        var lastLogged: String?
        while !interrupter.isStopped {
            update { $0.state = $0.reconnects == 0 && $0.segmentsWritten == 0 ? .connecting : .reconnecting }
            recordedSinceFailure.store(false, ordering: .relaxed)
            let runner = self.runner
            let interrupter = self.interrupter
            var failure: MediaError
            do {
                try await pool.runIfActive { [self] in
                    try runner.runSession(stop: interrupter, emit: { event in
                        // Marked here, in the session, not when the event is consumed later: a
                        // session that recorded resets the backoff, and only that session.
                        if case .segmentStarted = event { self.recordedSinceFailure.store(true, ordering: .relaxed) }
                        continuation.yield(event)
                    })
                }
                failure = MediaError(code: .endOfStream, call: "runSession", target: configuration.cameraURL, message: "the camera closed the stream")
            } catch let error as MediaError {
                failure = error
            } catch {
                failure = MediaError(code: .other, call: "runSession", target: configuration.cameraURL, message: "\(error)")
            }
            if interrupter.isStopped || failure.code == .cancelled { break }

            if recordedSinceFailure.load(ordering: .relaxed) { backoff.reset() }
            let delay: Double
            if failure.code == .storageFull {
                // The camera is fine: make room and go on at once.
                _ = try? await ring.enforceRetention(writingBytes: 0)
                delay = 0.2
            } else {
                delay = failure.isRetryable ? backoff.next(random: Double.random(in: 0..<1)) : max(backoff.next(random: Double.random(in: 0..<1)), 10)
            }
            let text = failure.description
            continuation.yield(.sessionEnded(failure))
            update {
                $0.state = .reconnecting
                $0.reconnects += 1
                $0.lastError = failure.message
                $0.lastErrorCode = failure.code.rawValue
                $0.lastErrorAt = clock.now()
                $0.openSegment = nil
            }
            // One line per kind of failure, not one per retry.
            if text != lastLogged {
                logger.error("camera: \(text); retrying in \(Int(delay.rounded(.up))) s")
                lastLogged = text
            } else {
                logger.debug("camera: still failing; retrying in \(delay) s")
            }
            do {
                try await wait(seconds: delay, after: failure)
            } catch {
                break  // cancelled
            }
        }
    }

    /// Sleeps for the backoff delay; with a probe, wakes early when a camera that could not be
    /// reached answers again (it came back: record it now, not at the end of a long backoff).
    func wait(seconds: Double, after failure: MediaError) async throws {
        guard let probe, [.unavailable, .timedOut, .endOfStream].contains(failure.code), seconds > 1 else {
            try await sleeper.sleep(for: .milliseconds(Int64(seconds * 1000)))
            return
        }
        var wasDown = !(await probe.isReachable())
        var remaining = seconds
        while remaining > 0, !interrupter.isStopped {
            let slice = min(remaining, 1)
            try await sleeper.sleep(for: .milliseconds(Int64(slice * 1000)))
            remaining -= slice
            let up = await probe.isReachable()
            if up && wasDown {
                logger.info("camera: answering again; reconnecting now")
                return
            }
            wasDown = !up
        }
    }

    /// Indexes finished segments, records gaps, keeps the ring within budget.
    func consume(_ events: AsyncStream<CaptureEvent>) async {
        for await event in events {
            switch event {
            case .connected(let info, let unused):
                logger.info("camera: connected", metadata: [
                    "codec": "\(info.videoCodec)", "size": "\(info.width)x\(info.height)", "fps": "\(info.fps)",
                    "audio": "\(info.audioCodec ?? "none")",
                ])
                if let note = info.audioNote { logger.warning("camera: \(note)") }
                if !unused.isEmpty {
                    logger.warning("camera: options not used by this camera (check [camera.options] for typos): \(unused.joined(separator: ", "))")
                }
                update {
                    $0.stream = info
                    $0.unusedCameraOptions = unused
                }
                writeStatus()
            case .segmentStarted(let origin, let path):
                let previousEnd = lastEnd.withLock { $0 }
                let reason = pendingGapReason.withLock { r -> String? in defer { r = nil }; return r }
                if let previousEnd, origin.start.seconds(since: previousEnd) > 1.5 {
                    do {
                        try await ring.recordGap(Gap(camera: origin.camera, start: previousEnd, end: origin.start,
                                                     reason: reason ?? "the camera sent nothing"))
                        update { $0.gaps += 1 }
                    } catch {
                        logger.error("index: cannot record a gap: \(error)")
                    }
                }
                var changed = false
                update {
                    if $0.state != .recording { $0.since = clock.now(); changed = true }
                    $0.state = .recording
                    $0.openSegment = path
                    $0.clockSynchronized = origin.clockSynchronized
                }
                if changed { writeStatus() }
            case .segmentFinished(let finished):
                do {
                    var segment = try await ring.commit(finished)
                    if !finished.origin.clockSynchronized && clock.isSynchronized() {
                        // Begun before the clock synchronised: time it from the monotonic clock.
                        try await ring.retime(bootID: clock.bootID, now: clock.now(), monotonicNanos: clock.monotonicNanos())
                        segment = try await ring.latest(camera: segment.camera) ?? segment
                    }
                    lastEnd.withLock { $0 = segment.end }
                    update {
                        $0.segmentsWritten += 1
                        $0.storageError = nil
                    }
                    if let found = finished.activity?.current.result { await flagMotion(found, in: segment) }
                } catch {
                    logger.error("index: cannot index \(finished.path): \(error); recovery indexes it at next start")
                    update { $0.storageError = "\(error)" }
                }
                await keepWithinBudget()
            case .segmentFailed(let path, let error):
                logger.error("storage: segment \(path) could not be finished: \(error)")
                update { $0.storageError = error.message }
                await keepWithinBudget()
                if !path.isEmpty, let finding = try? await ring.adoptFailed(path: path) {
                    logger.notice("storage: \(finding)")
                }
            case .activityUnavailable(let why):
                logger.warning("activity: this camera's keyframes cannot be decoded here, recording without the activity index: \(why)")
            case .activityStream(let what):
                logger.notice("activity: the sub-stream \(what)")
            case .sessionEnded(let failure):
                pendingGapReason.withLock { $0 = $0 ?? failure.message }
                writeStatus()
            case .stats(let fps, let kbps, let last, let dropped, let durable, let lead):
                update {
                    $0.fps = fps
                    $0.bitrateKbps = kbps
                    $0.lastPacketAt = last
                    $0.droppedPackets = dropped
                    $0.durableUntil = durable ?? $0.durableUntil
                    $0.timelineLeadSeconds = lead
                }
            }
        }
    }

    /// Motion flags made in the last hour count against the cap after a restart too.
    func rememberMotionFlags() async {
        guard configuration.motion != nil, let flags = try? await ring.flags(includeReleased: true) else { return }
        let now = clock.now()
        motion.withLock { trigger in
            for f in flags where f.source == .motion && now.seconds(since: f.createdAt) < 3600 {
                trigger?.remember(flagMadeAt: f.createdAt, pinnedSeconds: f.pinTo.seconds(since: f.pinFrom))
            }
        }
    }

    /// Feeds a segment's keyframes to the motion trigger and makes the flags it decides on.
    func flagMotion(_ found: SegmentActivity, in segment: Segment) async {
        guard let local = configuration.motion?.localTime else { return }
        let (decisions, used) = motion.withLock { trigger -> ([MotionTrigger.Decision], Double) in
            guard trigger != nil else { return ([], 0) }
            var decisions: [MotionTrigger.Decision] = []
            for k in found.keyframes {
                let t = segment.start + k.secondsIntoSegment
                decisions += trigger!.observe(at: t, localMinute: local.minuteOfDay(milliseconds: t.milliseconds), cells: k.cells, lighting: k.lighting)
            }
            decisions += trigger!.advance(to: segment.end)
            return (decisions, trigger!.usedSeconds(now: segment.end))
        }
        update { $0.motion?.usedSeconds = used }
        guard let rules = configuration.motion?.rules else { return }
        for decision in decisions {
            switch decision {
            case .flag(let from, let to, let peak, let trimmed):
                let request = Ring.FlagRequest(camera: segment.camera, from: from, to: to,
                                               reason: "motion: \(peak) cell\(peak == 1 ? "" : "s") moved in the zone" + (trimmed ? " (cut to the hourly cap)" : ""),
                                               source: .motion, preRollSeconds: rules.preRollSeconds, postRollSeconds: rules.postRollSeconds)
                do {
                    let flag = try await ring.flag(request, now: clock.now())
                    logger.notice("motion: flagged \(from) → \(to)", metadata: ["flag": "\(flag.id)", "cells": "\(peak)", "trimmed": "\(trimmed)"])
                    update {
                        $0.motion?.flags += 1
                        $0.motion?.lastFlagAt = clock.now()
                    }
                } catch {
                    logger.warning("motion: movement at \(from) → \(to) not flagged: \(error)")
                    update { $0.motion?.capped += 1 }
                }
            case .capped(let e, let used):
                logger.notice("motion: movement at \(e.from) → \(e.to) not flagged: motion flags pinned \(Int(used)) s this hour, the cap is \(Int(rules.maxPinSecondsPerHour)) s")
                update { $0.motion?.capped += 1 }
            case .tooShort:
                break
            }
        }
    }

    func keepWithinBudget() async {
        do {
            try await ring.enforceRetention()
        } catch {
            logger.error("retention: \(error)")
            update { $0.storageError = "\(error)" }
        }
    }

    /// Writes `status.json` every `statusInterval` until cancelled, and watches for the clock
    /// becoming synchronised (then this boot's segments are re-timed).
    func publishStatus() async {
        var synced = clock.isSynchronized()
        while !interrupter.isStopped {
            let now = clock.isSynchronized()
            if now && !synced {
                do {
                    try await ring.retime(bootID: clock.bootID, now: clock.now(), monotonicNanos: clock.monotonicNanos())
                } catch {
                    logger.error("index: cannot re-time segments after the clock synchronised: \(error)")
                }
            }
            synced = now
            update { $0.clockSynchronized = now }
            writeStatus()
            notifySystemd()
            try? await Task.sleep(for: configuration.statusInterval)
        }
    }

    private let readySent = Atomic<Bool>(false)

    /// READY=1 once recording has started; WATCHDOG=1 only while packets flow and the ring
    /// takes writes; STATUS= in words for `systemctl status`.
    func notifySystemd() {
        guard let notifier = configuration.notifier else { return }
        let h = health
        let flowing = h.state == .recording && h.storageError == nil
            && h.lastPacketAt.map { clock.now().seconds(since: $0) <= configuration.stallSeconds } == true
        if h.state == .recording && !readySent.exchange(true, ordering: .relaxed) {
            notifier.send("READY=1")
        }
        if flowing && notifier.watchdogSeconds != nil {
            notifier.send("WATCHDOG=1")
        }
        let words: String
        switch h.state {
        case .recording: words = "recording \(h.stream.map { "\($0.videoCodec) \($0.width)x\($0.height)" } ?? ""), \(h.segmentsWritten) segments"
        case .reconnecting, .connecting: words = "not recording: \(h.lastError ?? "connecting to the camera")"
        case .starting: words = "starting"
        case .stopped: words = "stopped"
        }
        notifier.send("STATUS=" + words)
    }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }()

    func writeStatus() {
        guard let path = configuration.statusPath else { return }
        let h = health
        guard let data = try? Self.encoder.encode(h) else { return }
        // Small, atomic (rename), not fsynced: it describes the moment, not the footage.
        try? FileSystem.writeAtomically(data, to: path)
    }
}
