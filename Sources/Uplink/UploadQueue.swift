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
    let logger: Logger

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
    }

    /// The `Upload-Metadata` of a segment (a contract: see `UploadMetadata`).
    public func metadata(for item: Ring.QueuedUpload) -> UploadMetadata {
        var m = UploadMetadata([
            ("device", device), ("camera", item.segment.camera),
            ("start", item.segment.start.rfc3339), ("end", item.segment.end.rfc3339),
            ("sha256", item.segment.sha256),
            ("filename", String(item.segment.path.split(separator: "/").last ?? "")),
        ])
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
        while true {
            let queue = try await ring.uploadQueue(newestFirst: newestFirst).filter { !skip.contains($0.segment.id) }
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
                chunkLearned: { size in learned.withLock { $0 = size } })
            switch result {
            case .uploaded(let url, let resent):
                try await ring.markUploaded(segmentID: segmentID)
                report.uploaded.append(segmentID)
                report.resentBytes += resent
                monitor?.update(force: true) { $0.uploadedThisRun += 1; $0.current = nil; $0.lastError = nil }
                logger.info("uplink: uploaded", metadata: ["segment": "\(item.segment.path)", "url": "\(url)"])
            case .failed(let reason, let kind):
                report.failed[segmentID] = reason
                skip.insert(segmentID)
                try await handleFailure(item, reason: reason, kind: kind, path: path)
            }
        }
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
    /// damaged it, and it goes to quarantine (reported in status and the heartbeat) instead of
    /// being sent again and again.
    func handleFailure(_ item: Ring.QueuedUpload, reason: String, kind: TusUploadStateMachine.FailureKind, path: String) async throws {
        if kind == .dataLoss {
            let actual = try? await NIOThreadPool.singleton.runIfActive { try FileSystem.sha256(path) }
            if actual != item.segment.sha256 {
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
