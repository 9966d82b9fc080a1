import Evidence
import Logging
import NIOPosix
@_exported import Wire

/// The ring buffer of segment files on the SD card and its index.
///
/// # Invariants
///
/// The life of a segment, in the order that keeps the index honest across power cuts
/// (after moonfire-nvr's `design/schema.md`):
///
/// 1. **Write.** The recorder creates `segments/<camera>/<YYYY-MM-DD>/<HH>/<start>.mp4`
///    (directories fsynced when created) and writes ftyp + moov, then one moof+mdat per GOP.
///    No row exists yet: the file is an *orphan*.
/// 2. **Make durable.** When the segment is cut, the file is `fdatasync`ed and its directory
///    `fsync`ed.
/// 3. **Index.** Only then is its row inserted (`state = 'live'`, size and SHA-256 of the
///    bytes written). **I1: every live row names a durable file of exactly `bytes` bytes
///    whose SHA-256 is `sha256`.**
/// 4. **Delete.** Retention first marks rows `state = 'deleting'` (one statement), then unlinks
///    the files, then drops the rows. **I2: a file is never unlinked while a live row names it.**
///
/// What a power cut can leave, and what `recover()` does with it at start-up (each logged):
/// - an orphan file (a segment that was being written, or written but not yet indexed):
///   cut back to its last whole fragment (**I3: every file in the tree starts with a
///   moov and ends on a whole fragment**), fsynced, hashed and indexed with `recovered = 1`;
///   an orphan without a single whole fragment is deleted;
/// - a `deleting` row: its file is unlinked (if still there) and the row dropped;
/// - a live row whose file is missing: the row is dropped (**I4: no row without a file**);
/// - a live row whose file has another size: the file is rescanned, cut back to its last
///   whole fragment and the row updated.
///
/// Further invariants `check()` verifies:
/// - **I5:** live segments of one camera do not overlap in time;
/// - **I6:** the live segments' bytes stay within the budget (plus one segment of slack);
/// - **I7:** the database passes SQLite's `integrity_check`.
///
/// `reindex()` rebuilds every row from the files alone: the start time, camera, monotonic
/// clock, boot and clock state are in each file's metadata comment (`SegmentOrigin`).
public actor Ring {
    public struct Configuration: Sendable, Equatable {
        public enum Budget: Sendable, Equatable {
            case bytes(Int64)
            case percent(Int)
        }
        /// The storage root: `index.sqlite` and `segments/` live here.
        public var root: String
        public var budget: Budget
        /// Bytes the ring always leaves free on the filesystem.
        public var reserveBytes: Int64
        public var maxPinnedPercent: Int

        public init(root: String, budget: Budget = .percent(90), reserveBytes: Int64 = 512_000_000, maxPinnedPercent: Int = 50) {
            self.root = root
            self.budget = budget
            self.reserveBytes = reserveBytes
            self.maxPinnedPercent = maxPinnedPercent
        }

        public var segmentsRoot: String { root + "/segments" }
        public var indexPath: String { root + "/index.sqlite" }
        /// The box's Ed25519 key (issue 13), kept with the footage it seals (0600 in a 0700
        /// directory), and its public half, readable by anyone.
        public var deviceKeyPath: String { root + "/keys/device.ed25519" }
        public var devicePublicKeyPath: String { root + "/device-key.pub" }
        /// Damaged files a repair found: kept here, out of the ring, named in `check`.
        public var quarantineRoot: String { root + "/quarantine" }
        /// Flags as police asked for them, outside the index: a corrupt index loses none.
        public var flagJournalPath: String { root + "/flags.jsonl" }
        /// Segments the commune acknowledged, outside the index.
        public var uploadJournalPath: String { root + "/uploaded.jsonl" }
    }

    public nonisolated let configuration: Configuration
    let index: RingIndex
    let logger: Logger
    let pool: NIOThreadPool
    /// The device's key and name once the recorder has asked for sealing (`startSealing`).
    var sealer: (key: DeviceKey, device: String)?
    /// The release that seals, written into every record (`junction 1.2.0 slot b`).
    var software: String?
    /// Chain records of segments already indexed (their rows name them in `chain_seq`) that wait
    /// to be filed in the chain table, `chainFilingBatch` at a time: one batch dirties the chain's
    /// newest page once where filing each record with its segment dirtied it every segment
    /// (measured by `make bench`). Each is durable in its segment's seal box, written before the
    /// row; a crash leaves them to recovery, which files them from those boxes. The recorder
    /// calls `commit`, `recordGap` and `evict` one at a time, so nothing else changes this.
    var unfiled: [RingIndex.ChainRow] = []
    /// Twelve: two minutes of 10-s segments. A record is ~1.4 kB, so a batch fills about four
    /// pages, each written once, where one record at a time rewrote the newest page every time.
    static let chainFilingBatch = 12
    /// False for the empty stand-in a read-only open gives where no index was ever made.
    public nonisolated let exists: Bool

    init(configuration: Configuration, index: RingIndex, logger: Logger, exists: Bool = true) {
        self.configuration = configuration
        self.index = index
        self.logger = logger
        self.pool = NIOThreadPool.singleton
        self.exists = exists
    }

    /// Opens (creating if needed) the storage root and the index. Does not recover: call
    /// `recover()` before recording. With `creating: false` (the read-only commands: list,
    /// status, check, export) a box where nothing was ever recorded gets an empty ring held in
    /// memory, `exists` false, and nothing is made on the card.
    public static func open(_ configuration: Configuration, creating: Bool = true, logger: Logger) async throws(RingError) -> Ring {
        let root = configuration.root
        if !creating, !FileSystem.exists(configuration.indexPath) {
            let index = try await RingIndex.open(path: configuration.indexPath, inMemory: true, logger: logger)
            return Ring(configuration: configuration, index: index, logger: logger, exists: false)
        }
        do {
            try await NIOThreadPool.singleton.runIfActive {
                try FileSystem.makeDirectories(configuration.segmentsRoot)
            }
        } catch let error as RingError {
            throw error
        } catch {
            throw RingError(.storage, "cannot prepare the data directory", path: root, underlying: error)
        }
        let index = try await RingIndex.open(path: configuration.indexPath, logger: logger)
        return Ring(configuration: configuration, index: index, logger: logger)
    }

    public func close() async {
        do { try await fileWaiting() } catch { logger.notice("evidence: chain records left to recovery: \(error)") }
        await index.close()
    }

    /// Runs blocking file work on the NIO thread pool, never on the shared concurrency pool.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws(RingError) -> T {
        do {
            return try await pool.runIfActive(body)
        } catch let error as RingError {
            throw error
        } catch {
            throw RingError(.storage, "file operation failed", underlying: error)
        }
    }

    func absolute(_ relative: String) -> String { configuration.segmentsRoot + "/" + relative }

    func relative(_ absolute: String) -> String {
        let prefix = configuration.segmentsRoot + "/"
        return absolute.hasPrefix(prefix) ? String(absolute.dropFirst(prefix.count)) : absolute
    }

    /// Where a segment starting at `origin` is written; creates (and fsyncs) its directories.
    /// Blocking: the recorder calls it from its capture thread.
    public nonisolated func prepareSegmentPath(for origin: SegmentOrigin) throws(RingError) -> String {
        let hour = origin.start.hour
        let dir = "\(configuration.segmentsRoot)/\(origin.camera)/\(origin.start.day)/\(hour)"
        try FileSystem.makeDirectories(dir)
        var path = "\(dir)/\(origin.start.compact).mp4"
        var n = 1
        while FileSystem.exists(path) {
            n += 1
            path = "\(dir)/\(origin.start.compact)-\(n).mp4"
        }
        return path
    }

    /// Step 3 of a segment's life: the file is durable, now the row says it exists.
    @discardableResult
    public func commit(_ finished: FinishedSegment) async throws(RingError) -> Segment {
        let end = finished.origin.start + finished.durationSeconds
        let activity = await finished.activity?.value(timeout: .seconds(2))?.summary
        let (bytes, sha256, chain) = await seal(finished, end: end, activity: activity)
        if !finished.durable {
            // The recorder left the last fdatasync to the seal; unsealed, it happens here. Either
            // way the file and its directory entry are on the card before the row says so.
            let path = finished.path, synced = chain != nil
            try await blocking {
                if !synced { try FileSystem.syncFile(path) }
                FileSystem.syncDirectory(FileSystem.parent(of: path))
            }
        }
        // The record is filed with every `chainFilingBatch`-th segment, and waits until then.
        let pending = unfiled + (chain.map { [$0] } ?? [])
        let filing = pending.count >= Self.chainFilingBatch ? pending : []
        let segment = try await index.insert(relativePath: relative(finished.path), origin: finished.origin, end: end,
                                             bytes: bytes, sha256: sha256, recovered: false, chain: chain, filing: filing,
                                             activity: activity)
        unfiled = filing.isEmpty ? pending : []
        logger.debug("segment indexed", metadata: ["path": "\(segment.path)", "bytes": "\(segment.bytes)"])
        try await closeFinishedFlags(camera: segment.camera, recordedUntil: segment.end)
        return segment
    }

    public func segments(camera: String? = nil, from: Timestamp? = nil, to: Timestamp? = nil) async throws(RingError) -> [Segment] {
        try await index.segments(camera: camera, from: from, to: to)
    }

    /// Oldest start and newest end of a camera's footage, without loading the segments.
    public func span(camera: String) async throws(RingError) -> (oldest: Timestamp, newest: Timestamp)? {
        try await index.span(camera: camera)
    }

    public func gaps(camera: String? = nil, from: Timestamp? = nil, to: Timestamp? = nil) async throws(RingError) -> [Gap] {
        try await index.gaps(camera: camera, from: from, to: to)
    }

    public func recordGap(_ gap: Gap) async throws(RingError) {
        let chain = try await sealGap(gap)
        try await index.insertGap(gap, chain: chain, filing: unfiled)
        unfiled.removeAll()
        logger.notice("gap recorded", metadata: ["from": "\(gap.start)", "to": "\(gap.end)", "reason": "\(gap.reason)"])
    }

    /// The newest live segment of a camera, if any.
    public func latest(camera: String) async throws(RingError) -> Segment? {
        try await index.run("SELECT \(RingIndex.segmentColumns) FROM segment WHERE camera = ? AND state = 'live' ORDER BY start_ms DESC, id DESC LIMIT 1",
                            [.text(camera)]).first.map(RingIndex.segment(from:))
    }

    /// Absolute path of a segment's file.
    public nonisolated func path(of segment: Segment) -> String {
        configuration.segmentsRoot + "/" + segment.path
    }
}

extension Ring {
    /// The wall clock has just become synchronised (NTP after a boot without RTC, or a step):
    /// re-times this boot's segments recorded before, from the monotonic clock, which never
    /// steps. `now` and `monotonicNanos` are read together, after the sync.
    /// - Returns: how many segments were re-timed.
    @discardableResult
    public func retime(bootID: String, now: Timestamp, monotonicNanos: Int64) async throws(RingError) -> Int {
        // SQLite evaluates every SET expression on the row's old values.
        let rows = try await index.run("""
            UPDATE segment
            SET start_ms = ?1 - (?2 - mono_start_ns) / 1000000,
                end_ms = ?1 - (?2 - mono_start_ns) / 1000000 + (end_ms - start_ms),
                clock_synced = 1
            WHERE boot_id = ?3 AND clock_synced = 0 AND mono_start_ns <= ?2
            RETURNING id
            """, [.integer(Int(now.milliseconds)), .integer(Int(monotonicNanos)), .text(bootID)])
        if !rows.isEmpty {
            logger.notice("clock synchronised: re-timed \(rows.count) segments of this boot from the monotonic clock")
        }
        return rows.count
    }
}
