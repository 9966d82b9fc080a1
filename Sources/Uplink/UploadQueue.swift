import Logging
import Synchronization
import NIOPosix
import Ring
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Sends every pinned, not yet uploaded segment to the tus server, one at a time in queue order,
/// keeping each upload's progress in the index (a reboot resumes, never restarts) and releasing
/// the pin only when the server has the whole file.
public struct UploadQueue: Sendable {
    public let ring: Ring
    public let client: TusClient
    public let device: String
    public let checksum: TusUploadStateMachine.ChecksumAlgorithm?
    public let configuration: TusUploadStateMachine.Configuration
    /// Within each flag, the newest segment first (`upload.order = "newest_first"`).
    public var newestFirst = false
    /// Told about each step, for `junction status`.
    public var monitor: UplinkMonitor?
    /// Makes a request's preview pictures from its segments (Media's `PreviewMaker`, off the
    /// shared pool); nil: previews wanted are sent as none (`empty`).
    public var makePreview: PreviewMaking?
    let logger: Logger

    /// The pictures of `from..<to` from segment files (path, start) in time order.
    public typealias PreviewMaking = @Sendable (_ segments: [(path: String, start: Timestamp)], _ from: Timestamp, _ to: Timestamp) async -> [PreviewSheet.Picture]

    public init(ring: Ring, client: TusClient, device: String, checksum: TusUploadStateMachine.ChecksumAlgorithm?,
                configuration: TusUploadStateMachine.Configuration = .init(), newestFirst: Bool = false, logger: Logger) {
        self.newestFirst = newestFirst
        self.ring = ring
        self.client = client
        self.device = device
        self.checksum = checksum
        self.configuration = configuration
        self.logger = logger
    }

    public struct Report: Sendable, Equatable {
        public var uploaded: [Int64] = []
        public var failed: [Int64: String] = [:]
        public var resentBytes: Int64 = 0
        /// Previews sent (by flag), and segments whose upload stopped because no flag wants them now.
        public var previews: [Int64] = []
        public var stopped: [Int64] = []
    }

    /// The `Upload-Metadata` of a segment (a contract: see `UploadMetadata`).
    public func metadata(for item: Ring.QueuedUpload) -> UploadMetadata {
        var m = UploadMetadata([
            ("device", device), ("camera", item.segment.camera),
            ("start", item.segment.start.rfc3339), ("end", item.segment.end.rfc3339),
            ("sha256", item.damagedSHA256 ?? item.segment.sha256),
            ("filename", String(item.segment.path.split(separator: "/").last ?? "")),
        ])
        if item.damagedSHA256 != nil {
            m["damaged"] = "card"
            m["recorded_sha256"] = item.segment.sha256
        }
        if let r = item.requestID { m["request"] = r }
        if let r = item.reason { m["reason"] = r }
        if let s = item.chainSeq { m["chain_seq"] = String(s) }
        return m
    }

    /// Uploads what is queued now; returns when the queue is empty, or a failure that waiting
    /// cannot fix stops one file (the others still go). Cancellation stops it between steps;
    /// progress is saved after every step.
    public func drain(sleep: @escaping @Sendable (Double) async throws -> Void) async throws -> Report {
        var report = Report()
        var skip: Set<Int64> = []
        // The chunk size the link settled on carries over to the next file (one upload per
        // segment: starting each at the initial size would idle a slow link for round trips).
        let learned = Mutex<Int?>(nil)
        var skipPreviews: Set<Int64> = []
        while true {
            // A request's preview goes before any video: made, then sent, one at a time.
            if try await previewStep(&report, skip: &skipPreviews, sleep: sleep) { continue }
            let queue = try await ring.uploadQueue(newestFirst: newestFirst).filter { !skip.contains($0.segment.id) }
            monitor?.update(force: queue.isEmpty) { $0.queued = queue.count }
            guard let item = queue.first else { return report }
            let path = ring.path(of: item.segment)
            let segmentID = item.segment.id
            let ring = self.ring
            let monitor = self.monitor
            let name = item.segment.path, total = item.segment.bytes
            monitor?.progress(segment: name, offset: item.state.offset, bytes: total)
            let result = try await client.upload(
                length: item.segment.bytes, metadata: metadata(for: item),
                progress: item.state,
                checksum: checksum, configuration: learned.withLock { l in
                    var c = configuration
                    if let l { c.initialChunk = l }
                    return c
                },
                read: { offset, length in try await Self.read(path: path, offset: offset, length: length) },
                save: { progress in
                    try? await ring.saveUpload(segmentID: segmentID, progress)
                    if let e = progress.lastError { monitor?.update { $0.lastError = e } }
                    monitor?.progress(segment: name, offset: progress.offset, bytes: total)
                },
                sleep: sleep,
                chunkLearned: { size in learned.withLock { $0 = size } },
                proceed: { (try? await ring.stillWanted(segmentID: segmentID)) ?? true })
            switch result {
            case .stopped:
                report.stopped.append(segmentID)
                skip.insert(segmentID)
                monitor?.update(force: true) { $0.current = nil }
                logger.notice("uplink: \(item.segment.path) is no longer wanted (its request was narrowed); its upload stopped")
            case .uploaded(let url, let resent):
                try await ring.markUploaded(segmentID: segmentID)
                report.uploaded.append(segmentID)
                report.resentBytes += resent
                monitor?.update(force: true) { $0.uploadedThisRun += 1; $0.current = nil; $0.lastError = nil }
                logger.info("uplink: uploaded", metadata: ["segment": "\(item.segment.path)", "url": "\(url)"])
                if item.damagedSHA256 != nil {
                    // Delivered as what it is: now it leaves the ring for quarantine, untouched.
                    let finding = try await ring.quarantineDamaged(item.segment, why: "the card damaged it; it was delivered to the commune as damaged, which says which seconds are lost")
                    logger.critical("uplink: \(finding)")
                }
            case .failed(let reason, let kind):
                report.failed[segmentID] = reason
                skip.insert(segmentID)
                try await handleFailure(item, reason: reason, kind: kind, path: path)
            }
        }
    }

    /// Makes the oldest wanted preview, or sends the oldest ready one; false when there is
    /// neither. A preview that fails waits its backoff; one that cannot be made is noted and
    /// never holds the video back.
    func previewStep(_ report: inout Report, skip: inout Set<Int64>,
                     sleep: @escaping @Sendable (Double) async throws -> Void) async throws -> Bool {
        if let wanted = try await ring.previews([.wanted]).first(where: { !skip.contains($0.flagID) }) {
            skip.insert(wanted.flagID)
            guard let sources = try await ring.previewSources(flagID: wanted.flagID) else { return true }
            let pictures = await makePreview?(sources.segments, sources.flag.from, sources.flag.to) ?? []
            do {
                try await ring.keepPreview(flagID: wanted.flagID, pictures: pictures)
                logger.info("uplink: preview made", metadata: ["request": "\(wanted.requestID)", "pictures": "\(pictures.count)"])
            } catch {
                try await ring.previewFailed(flagID: wanted.flagID, why: "\(error)")
                logger.error("uplink: the preview of \(wanted.requestID) cannot be kept: \(error); its video still goes")
            }
            skip.remove(wanted.flagID)
            return true
        }
        guard let preview = try await ring.previews([.ready]).first(where: { !skip.contains($0.flagID) }),
              let path = ring.previewPath(preview), let sha = preview.sha256,
              let flag = try await ring.flags().first(where: { $0.id == preview.flagID }) else { return false }
        skip.insert(preview.flagID)
        let flagID = preview.flagID, ring = self.ring, monitor = self.monitor, name = preview.path ?? "", total = preview.bytes
        let metadata = UploadMetadata([
            ("device", device), ("camera", flag.camera), ("start", flag.from.rfc3339), ("end", flag.to.rfc3339),
            ("sha256", sha), ("filename", name), ("kind", "preview"), ("request", preview.requestID),
            ("pictures", String(preview.pictures)),
        ])
        monitor?.progress(segment: name, offset: preview.upload.offset, bytes: total)
        let result = try await client.upload(
            length: preview.bytes, metadata: metadata, progress: preview.upload, checksum: checksum,
            // The initial chunk, not the one the video learned: the first pictures arrive sooner.
            configuration: configuration,
            read: { offset, length in try await Self.read(path: path, offset: offset, length: length) },
            save: { progress in
                try? await ring.savePreviewUpload(flagID: flagID, progress)
                monitor?.progress(segment: name, offset: progress.offset, bytes: total)
            },
            sleep: sleep)
        switch result {
        case .uploaded:
            try await ring.markPreviewUploaded(flagID: flagID)
            report.previews.append(flagID)
            monitor?.update(force: true) { $0.current = nil }
            logger.notice("uplink: preview sent", metadata: ["request": "\(preview.requestID)", "pictures": "\(preview.pictures)", "bytes": "\(total)"])
        case .failed(let reason, let kind) where kind == .refused || kind == .dataLoss:
            // The commune will not take it (its request is gone, or it is not well-formed): a
            // finding aid is not worth hours of retries; the video still goes.
            try await ring.previewFailed(flagID: flagID, why: "\(kind.rawValue): \(reason)")
            logger.error("uplink: the commune refused the preview of \(preview.requestID): \(reason); its video still goes")
        case .failed(let reason, let kind):
            let wait = Self.backoff(kind, attempts: preview.upload.attempts)
            try await ring.deferPreview(flagID: flagID, until: .now() + wait, reason: "\(kind.rawValue): \(reason)")
            logger.error("uplink: preview of \(preview.requestID) (\(kind.rawValue)): \(reason); next try in \(Int(wait)) s")
        case .stopped:
            break
        }
        return true
    }

    /// How long a file waits after its `attempts`-th failure of `kind` before it is tried again
    /// (per upload: the rest of the queue moves meanwhile).
    public static func backoff(_ kind: TusUploadStateMachine.FailureKind, attempts: Int) -> Double {
        let base: Double, cap: Double
        switch kind {
        case .unavailable: (base, cap) = (10, 600)
        case .dataLoss, .refused: (base, cap) = (300, 6 * 3600)
        case .tls, .unauthenticated: (base, cap) = (60, 3600)
        }
        return min(cap, base * Double(1 << min(max(attempts, 0), 16)))
    }

    /// A failed upload waits its turn; one the server refused as corrupt is checked on the card
    /// first: if the file no longer has the SHA-256 recorded when it was written, the card
    /// damaged it. It is then sent again as it is, declared damaged, so that its intact
    /// fragments still reach the commune (issue 22), and goes to quarantine once delivered; a
    /// file that cannot be read at all goes to quarantine at once (reported in status and the
    /// heartbeat) instead of being sent again and again.
    func handleFailure(_ item: Ring.QueuedUpload, reason: String, kind: TusUploadStateMachine.FailureKind, path: String) async throws {
        if kind == .dataLoss {
            let actual = try? await NIOThreadPool.singleton.runIfActive { try FileSystem.sha256(path) }
            if let actual, actual != item.segment.sha256, actual != item.damagedSHA256 {
                try await ring.markDamaged(segmentID: item.segment.id, sha256: actual)
                monitor?.update(force: true) { $0.lastError = "segment damaged on the card, sent as damaged: \(item.segment.path)" }
                logger.critical("uplink: \(item.segment.path) was damaged on the card (its SHA-256 is not the one recorded when it was written): sending it as it is, declared damaged; the commune will say which seconds are lost")
                return
            }
            if actual != item.segment.sha256 && actual != item.damagedSHA256 {
                let finding = try await ring.quarantineDamaged(item.segment, why: "the commune refused it as corrupt and its SHA-256 on the card no longer matches the one recorded when it was written")
                monitor?.update(force: true) { $0.lastError = "segment damaged on the card, quarantined: \(item.segment.path)" }
                logger.critical("uplink: \(finding)")
                return
            }
        }
        let wait = Self.backoff(kind, attempts: item.state.attempts)
        try await ring.deferUpload(segmentID: item.segment.id, until: .now() + wait, reason: "\(kind.rawValue): \(reason)")
        logger.error("uplink: \(item.segment.path) (\(kind.rawValue)): \(reason); next try in \(Int(wait)) s, the rest of the queue goes on")
    }

    /// `pread` on the NIO thread pool (never on the shared concurrency pool).
    static func read(path: String, offset: Int64, length: Int) async throws -> [UInt8] {
        try await NIOThreadPool.singleton.runIfActive {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw UplinkError("cannot read \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: length)
            var done = 0
            while done < length {
                let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, length - done, off_t(offset) + off_t(done)) }
                if n < 0 { if errno == EINTR { continue }; throw UplinkError("cannot read \(path): \(String(cString: strerror(errno)))") }
                if n == 0 { throw UplinkError("\(path) is shorter than its index says: junction check") }
                done += n
            }
            return buf
        }
    }
}

public struct UplinkError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ text: String) { description = text }
}
