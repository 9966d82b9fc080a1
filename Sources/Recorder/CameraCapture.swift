import Media
import Ring

/// The real capture: camera → `SegmentCutter` → `SegmentMuxer` files in the ring's tree.
/// Runs on a thread of its own (never on the shared concurrency pool): every call in it blocks.
public struct CameraCapture: CaptureRunner {
    public struct Configuration: Sendable {
        public var input: CameraInput.Options
        public var cameraID: String
        public var segmentSeconds: Int
        /// fdatasync each whole fragment as it is written (`storage.sync_fragments`).
        public var syncFragments: Bool
        /// The ring seals each segment (`storage.seal`): a finished file is handed over unsynced
        /// and the ring's one `fdatasync` after the seal makes media and seal durable together.
        public var ringSeals: Bool
        /// Index activity (issue 14): keyframes decoded beside the capture (`ActivityWorker`),
        /// each segment's summary sealed and indexed with it.
        public var activity: Bool
        /// The camera's sub-stream to decode for activity instead of the recorded keyframes.
        public var activityStream: CameraInput.Options?

        public init(input: CameraInput.Options, cameraID: String, segmentSeconds: Int, syncFragments: Bool = true, ringSeals: Bool = false,
                    activity: Bool = false, activityStream: CameraInput.Options? = nil) {
            self.input = input
            self.cameraID = cameraID
            self.segmentSeconds = segmentSeconds
            self.syncFragments = syncFragments
            self.ringSeals = ringSeals
            self.activity = activity
            self.activityStream = activityStream
        }
    }

    let configuration: Configuration
    let ring: Ring
    let clock: any HostClock

    public init(configuration: Configuration, ring: Ring, clock: any HostClock) {
        self.configuration = configuration
        self.ring = ring
        self.clock = clock
    }

    public func runSession(stop: Interrupter, emit: @escaping @Sendable (CaptureEvent) -> Void) throws(MediaError) {
        let input = try openCamera(configuration.input, interrupter: stop)
        emit(.connected(input.info, unusedOptions: input.unusedOptions))
        // A camera whose video cannot be decoded here is still recorded, without activity.
        var activity: ActivityWorker?
        var subStream: SubStreamActivity?
        if configuration.activity, let options = configuration.activityStream {
            subStream = SubStreamActivity(options: options, clock: clock, emit: emit)
            activity = subStream?.worker
        } else if configuration.activity {
            do { activity = try ActivityWorker(input: input) } catch { emit(.activityUnavailable(String(describing: error))) }
        }
        defer { subStream?.stop() }

        let packet = Packet()
        var cutter = SegmentCutter(targetSeconds: configuration.segmentSeconds)
        var muxer: SegmentMuxer?
        var origin: SegmentOrigin?
        var streamOrigin: Int64 = 0
        // Wall clock anchor of this connection: camera time `anchorMicros` was `anchorWall`.
        var anchorWall = Timestamp(milliseconds: 0)
        var anchorMicros: Int64 = 0

        // Statistics, published about once a second of camera time (no clock read per packet).
        var statFrames = 0, statBytes = 0, dropped = 0
        var statStart: Int64?

        var openPath = ""
        // The open segment's wall-clock start and camera time there, to time its durable end.
        var segmentWall = Timestamp(milliseconds: 0)
        var segmentMicros: Int64 = 0
        // The end of the last recorded second on the card (a finished segment, or a synced fragment).
        var durableUntil: Timestamp?

        /// Finishes the open segment (trailer, fsync) and hands it to the service; a segment
        /// that cannot be finished is left for the ring to cut back and index.
        func close(after failure: MediaError? = nil) {
            guard let m = muxer, let o = origin else { return }
            muxer = nil
            if let failure, failure.code == .storageFull || failure.code == .storage {
                emit(.segmentFailed(path: openPath, failure))
                return
            }
            let summary = activity?.endSegment()
            do {
                let f = try m.finish(sync: !configuration.ringSeals)
                durableUntil = segmentWall + Double(f.endMicroseconds - segmentMicros) / 1e6
                emit(.segmentFinished(FinishedSegment(path: f.path, origin: o, bytes: f.bytes, sha256: f.sha256,
                                                      durationSeconds: max(0, f.durationSeconds), hashed: f.hasher, durable: f.durable,
                                                      activity: summary)))
            } catch {
                emit(.segmentFailed(path: openPath, error))
            }
        }

        do throws(MediaError) {
            while true {
                try input.read(into: packet)
                guard packet.kind != .other else { continue }
                let time = packet.dtsMicroseconds
                let isVideo = packet.kind == .video
                let action = cutter.decide(isVideo: isVideo, isKeyframe: packet.isKeyframe, time: time)
                switch action {
                case .drop:
                    dropped += 1
                    continue
                case .start, .cut:
                    let t = time!
                    let now = clock.now()
                    if action == .start {
                        streamOrigin = t
                        anchorWall = now
                        anchorMicros = t
                    }
                    close()
                    var start = anchorWall + Double(t - anchorMicros) / 1e6
                    // Re-anchor when camera time and the wall clock drift apart by over a second
                    // (camera clock drift, or the system clock was stepped).
                    if abs(start.seconds(since: now)) > 1 {
                        anchorWall = now
                        anchorMicros = t
                        start = now
                    }
                    let o = SegmentOrigin(camera: configuration.cameraID, start: start,
                                          monotonicNanos: clock.monotonicNanos() - Int64(now.seconds(since: start) * 1e9),
                                          bootID: clock.bootID, clockSynchronized: clock.isSynchronized(),
                                          codec: input.info.videoCodec)
                    let path: String
                    do {
                        path = try ring.prepareSegmentPath(for: o)
                    } catch {
                        throw MediaError(code: .storage, call: "mkdir", target: ring.configuration.segmentsRoot,
                                         message: "cannot create the segment directory: \(error)")
                    }
                    muxer = try SegmentMuxer(path: path, input: input, originMicroseconds: streamOrigin, comment: o.comment,
                                         syncFragments: configuration.syncFragments)
                    origin = o
                    segmentWall = start
                    segmentMicros = t
                    openPath = path
                    activity?.beginSegment(atMicroseconds: t)
                    subStream?.mark(micros: t)
                    emit(.segmentStarted(o, path: path))
                case .write:
                    break
                }
                if isVideo { statFrames += 1 }
                statBytes += packet.size
                // Offered before the write: the muxer takes the packet's data and blanks it.
                if subStream == nil, let t = time { activity?.offer(packet, microseconds: t) }
                try muxer!.write(packet)

                if isVideo, let t = time {
                    let elapsed = t - (statStart ?? t)
                    if statStart == nil || elapsed < 0 {
                        statStart = t
                        statFrames = 1
                        statBytes = packet.size
                    } else if elapsed >= 1_000_000 {
                        let secs = Double(elapsed) / 1e6
                        if let end = muxer?.durableEndMicroseconds {
                            durableUntil = segmentWall + Double(end - segmentMicros) / 1e6
                        }
                        let now = clock.now()
                        subStream?.mark(micros: t)
                        // This packet's place on the footage timeline against when it arrived.
                        let lead = (segmentWall + Double(t - segmentMicros) / 1e6).seconds(since: now)
                        emit(.stats(fps: Double(statFrames - 1) / secs, bitrateKbps: Double(statBytes) * 8 / 1000 / secs,
                                    lastPacketAt: now, droppedPackets: dropped, durableUntil: durableUntil, timelineLead: lead))
                        statStart = t
                        statFrames = 1
                        statBytes = 0
                    }
                }
            }
        } catch {
            // Always close the open segment: what was recorded up to the failure is kept.
            close(after: error)
            throw error
        }
    }
}
