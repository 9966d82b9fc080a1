import Activity
import Evidence
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import Wire

/// The one front door to the index database (`index.sqlite`, WAL). Owns the connection, runs
/// the migrations when it opens, and exposes named operations.
///
/// Every statement and every transaction passes one gate, in arrival order: a write made of
/// several statements (a flag: check the pin cap, insert, pin) runs in `transaction`, as
/// `BEGIN IMMEDIATE … COMMIT`, and no other task's statement can run between its statements,
/// land inside it or be rolled back with it. Another process (a CLI command while the daemon
/// runs) waits up to `busyTimeoutMilliseconds` for SQLite's write lock.
final class RingIndex: Sendable {
    let connection: SQLiteConnection
    let path: String
    private let gate = SerialGate()
    static let busyTimeoutMilliseconds = 5000

    /// Shipped migrations are never edited; a change is a new entry at the end.
    static let migrations: [String] = [
        // 1: segments and gaps.
        """
        CREATE TABLE segment (
            id INTEGER PRIMARY KEY,
            camera TEXT NOT NULL CHECK (length(camera) > 0),
            path TEXT NOT NULL UNIQUE,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL CHECK (end_ms >= start_ms),
            mono_start_ns INTEGER NOT NULL,
            boot_id TEXT NOT NULL,
            clock_synced INTEGER NOT NULL CHECK (clock_synced IN (0, 1)),
            bytes INTEGER NOT NULL CHECK (bytes > 0),
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            codec TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
            flagged INTEGER NOT NULL DEFAULT 0 CHECK (flagged IN (0, 1)),
            uploaded INTEGER NOT NULL DEFAULT 0 CHECK (uploaded IN (0, 1)),
            recovered INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1))
        );
        CREATE INDEX segment_by_time ON segment (camera, start_ms);
        CREATE TABLE gap (
            id INTEGER PRIMARY KEY,
            camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL CHECK (end_ms >= start_ms),
            reason TEXT NOT NULL
        );
        CREATE INDEX gap_by_time ON gap (camera, start_ms);
        """,
        // 2: flags (what must leave the box). pin_from/pin_to include pre- and post-roll.
        """
        CREATE TABLE flag (
            id INTEGER PRIMARY KEY,
            camera TEXT NOT NULL,
            from_ms INTEGER NOT NULL,
            to_ms INTEGER NOT NULL CHECK (to_ms > from_ms),
            pin_from_ms INTEGER NOT NULL CHECK (pin_from_ms <= from_ms),
            pin_to_ms INTEGER NOT NULL CHECK (pin_to_ms >= to_ms),
            reason TEXT,
            source TEXT NOT NULL CHECK (source IN ('cli', 'request', 'motion')),
            request_id TEXT,
            created_ms INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'released'))
        );
        CREATE INDEX flag_by_state ON flag (state, camera)
        """,
        // 3: upload progress of pinned segments, so a reboot resumes instead of restarting.
        """
        CREATE TABLE upload (
            segment_id INTEGER PRIMARY KEY REFERENCES segment (id) ON DELETE CASCADE,
            url TEXT,
            offset_bytes INTEGER NOT NULL DEFAULT 0 CHECK (offset_bytes >= 0),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_ms INTEGER NOT NULL
        )
        """,
        // 4: how far back the ring has overwritten footage, per camera, so a footage request can
        // tell "evicted" from "never recorded".
        """
        CREATE TABLE evicted (
            camera TEXT PRIMARY KEY,
            from_ms INTEGER NOT NULL,
            through_ms INTEGER NOT NULL
        )
        """,
        // 5: the uploader asks "is anything waiting?" four times a second for months: answer it
        // from a partial index of the few pinned, not yet uploaded rows, not a scan of the ring.
        """
        CREATE INDEX segment_waiting ON segment (id) WHERE flagged = 1 AND uploaded = 0 AND state = 'live'
        """,
        // 6: per-upload backoff: a file the server keeps refusing waits its turn instead of
        // being re-sent whole every two seconds while the rest of the queue starves (issue 11).
        """
        ALTER TABLE upload ADD COLUMN retry_after_ms INTEGER NOT NULL DEFAULT 0
        """,
        // 7: the evidence chain (issue 13): one sealed record per finished segment and per gap,
        // in order. Rows stay when the ring evicts a segment's file: the chain still spans it.
        """
        CREATE TABLE chain (
            seq INTEGER PRIMARY KEY CHECK (seq > 0),
            kind TEXT NOT NULL CHECK (kind IN ('segment', 'gap')),
            camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            segment_path TEXT,
            hash TEXT NOT NULL,
            body TEXT NOT NULL,
            signature TEXT NOT NULL
        );
        CREATE INDEX chain_time ON chain (camera, start_ms)
        """,
        // 8: the commune's countersignatures of the chain head (issue 13), as the heartbeat
        // brought them back: they pin the chain in time and show a cut tail.
        """
        CREATE TABLE countersign (
            id INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            signature TEXT NOT NULL,
            commune_key TEXT NOT NULL
        );
        CREATE INDEX countersign_seq ON countersign (seq);
        CREATE INDEX chain_segment ON chain (segment_path)
        """,
        // 9: a segment names its record in its own row, and the chain keeps no secondary index:
        // sealing a segment then dirties one more page of the index (the chain's newest), not
        // three (measured by `make bench`: the card bytes sealing costs).
        """
        ALTER TABLE segment ADD COLUMN chain_seq INTEGER;
        UPDATE segment SET chain_seq = (SELECT c.seq FROM chain c WHERE c.segment_path = segment.path);
        DROP INDEX chain_segment;
        DROP INDEX chain_time
        """,
        // 10: each segment's activity summary (issue 14), in its own row.
        """
        ALTER TABLE segment ADD COLUMN activity BLOB
        """,
        // 11: a footage request's preview (issue 14): wanted when the request is taken, made
        // from the card's keyframes, uploaded before the video, its upload resumable like a
        // segment's. One per flag.
        """
        CREATE TABLE preview (
            flag_id INTEGER PRIMARY KEY REFERENCES flag (id) ON DELETE CASCADE,
            request_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('wanted', 'ready', 'uploaded', 'empty', 'failed')),
            path TEXT,
            bytes INTEGER NOT NULL DEFAULT 0,
            sha256 TEXT,
            pictures INTEGER NOT NULL DEFAULT 0,
            from_ms INTEGER,
            to_ms INTEGER,
            url TEXT,
            offset_bytes INTEGER NOT NULL DEFAULT 0 CHECK (offset_bytes >= 0),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            retry_after_ms INTEGER NOT NULL DEFAULT 0,
            updated_ms INTEGER NOT NULL
        )
        """,
        // 12: the commune's key, pinned by the first countersignature kept (or given as
        // server.commune_key): no other key's is kept after; and when each countersignature was
        // kept by the box's own clock, which decides what is thinned (never the commune's time:
        // issue 22).
        """
        CREATE TABLE commune_key (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            public_key TEXT NOT NULL,
            pinned_ms INTEGER NOT NULL
        );
        ALTER TABLE countersign ADD COLUMN kept_ms INTEGER;
        UPDATE countersign SET kept_ms = received_ms;
        INSERT INTO commune_key (id, public_key, pinned_ms)
            SELECT 1, commune_key, received_ms FROM countersign ORDER BY id LIMIT 1
        """,
        // 13: a flagged segment the card damaged is sent as it is (issue 22): the SHA-256 of
        // its bytes now, beside the one recorded when it was written (still the evidence).
        """
        ALTER TABLE segment ADD COLUMN damaged_sha256 TEXT
        """,
        // 14 (issue 23): the device key each countersignature names (version 2), and the
        // commune's binding of this box's key, which every export carries as its trust anchor.
        """
        ALTER TABLE countersign ADD COLUMN device_key TEXT;
        CREATE TABLE key_binding (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            body TEXT NOT NULL,
            kept_ms INTEGER NOT NULL
        )
        """,
    ]

    private init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.path = path
    }

    /// Attempts to open the index before it is called unusable: two processes opening a new
    /// index at once (the daemon starting while `junction list` runs) can each see a transient
    /// I/O error from the other's switch to WAL; a healthy index must never be moved aside for that.
    static let openAttempts = 4

    /// Opens (creating when missing) the index at `path`; with `inMemory`, an empty index of the
    /// same schema that lives in memory only (what a read-only command uses where no index was
    /// ever made, so that looking creates nothing).
    static func open(path: String, inMemory: Bool = false, logger: Logger) async throws(RingError) -> RingIndex {
        var attempt = 1
        while true {
            do {
                return try await openOnce(path: path, inMemory: inMemory, logger: logger)
            } catch {
                guard attempt < openAttempts else { throw error }
                logger.notice("index: opening failed, trying again", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                attempt += 1
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    private static func openOnce(path: String, inMemory: Bool, logger: Logger) async throws(RingError) -> RingIndex {
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: inMemory ? .memory : .file(path: path), logger: logger)
        } catch {
            throw RingError(.index, "cannot open the index", path: path, underlying: error)
        }
        let index = RingIndex(connection: connection, path: path)
        do {
            _ = try await connection.query("PRAGMA journal_mode = WAL", [])
            _ = try await connection.query("PRAGMA synchronous = FULL", [])
            _ = try await connection.query("PRAGMA foreign_keys = ON", [])
            _ = try await connection.query("PRAGMA busy_timeout = \(busyTimeoutMilliseconds)", [])
            try await index.migrate(logger: logger)
        } catch let error as RingError {
            try? await connection.close()
            throw error
        } catch {
            try? await connection.close()
            throw RingError(.index, "the index cannot be used (run `junction reindex` to rebuild it from the segment files)", path: path, underlying: error)
        }
        return index
    }

    /// Applies pending migrations in one IMMEDIATE transaction, reading the version inside it,
    /// so a CLI command opening the index while the daemon starts cannot apply one twice.
    private func migrate(logger: Logger) async throws {
        let peek = try await connection.query("PRAGMA user_version", []).first?.column("user_version")?.integer ?? 0
        guard peek < Self.migrations.count else {
            guard peek == Self.migrations.count else {
                throw RingError(.index, "the index was written by a newer junction (schema \(peek)); update this box's software", path: path)
            }
            return
        }
        _ = try await connection.query("BEGIN IMMEDIATE", [])
        do {
            let version = try await connection.query("PRAGMA user_version", []).first?.column("user_version")?.integer ?? 0
            for (n, sql) in Self.migrations.enumerated() where n >= version {
                logger.info("index: applying migration \(n + 1)")
                for statement in sql.split(separator: ";") where !statement.allSatisfy({ $0.isWhitespace }) {
                    _ = try await connection.query(String(statement), [])
                }
                _ = try await connection.query("PRAGMA user_version = \(n + 1)", [])
            }
            _ = try await connection.query("COMMIT", [])
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
    }

    func close() async {
        try? await connection.close()
    }

    /// One statement, on its own (SQLite makes it atomic).
    func run(_ sql: String, _ binds: [SQLiteData] = []) async throws(RingError) -> [SQLiteRow] {
        await gate.enter()
        let result: Result<[SQLiteRow], RingError>
        do throws(RingError) { result = .success(try await statements.run(sql, binds)) } catch { result = .failure(error) }
        await gate.leave()
        return try result.get()
    }

    /// Statements of one transaction: only `transaction`'s body holds them.
    struct Statements: Sendable {
        let connection: SQLiteConnection
        let path: String

        func run(_ sql: String, _ binds: [SQLiteData] = []) async throws(RingError) -> [SQLiteRow] {
            do {
                return try await connection.query(sql, binds)
            } catch {
                throw RingError(.index, "index query failed", path: path, underlying: error)
            }
        }
    }

    private var statements: Statements { Statements(connection: connection, path: path) }

    /// Runs `body` as one `BEGIN IMMEDIATE` transaction: all of it is committed, or (when it
    /// throws) none of it. The body must use only the `Statements` it is given: calling `run` or
    /// another operation of this index from inside it would wait for itself.
    func transaction<T: Sendable>(_ body: @Sendable (Statements) async throws(RingError) -> T) async throws(RingError) -> T {
        await gate.enter()
        let db = statements
        let result: Result<T, RingError>
        do throws(RingError) {
            _ = try await db.run("BEGIN IMMEDIATE")
            let value: T
            do throws(RingError) {
                value = try await body(db)
                _ = try await db.run("COMMIT")
            } catch {
                _ = try? await db.run("ROLLBACK")
                throw error
            }
            result = .success(value)
        } catch {
            result = .failure(error)
        }
        await gate.leave()
        return try result.get()
    }

    static let segmentColumns = "id, camera, path, start_ms, end_ms, mono_start_ns, boot_id, clock_synced, bytes, sha256, codec, flagged, uploaded, recovered, state"

    static func segment(from row: SQLiteRow) -> Segment {
        func int(_ c: String) -> Int64 { Int64(row.column(c)?.integer ?? 0) }
        func text(_ c: String) -> String { row.column(c)?.string ?? "" }
        return Segment(id: int("id"), camera: text("camera"), path: text("path"),
                       start: Timestamp(milliseconds: int("start_ms")), end: Timestamp(milliseconds: int("end_ms")),
                       monotonicStartNanos: int("mono_start_ns"), bootID: text("boot_id"),
                       clockSynchronized: int("clock_synced") == 1, bytes: int("bytes"), sha256: text("sha256"),
                       codec: text("codec"), flagged: int("flagged") == 1, uploaded: int("uploaded") == 1,
                       recovered: int("recovered") == 1)
    }

    /// A sealed chain record as the index keeps it.
    struct ChainRow: Sendable {
        var sealed: SealedRecord
        var record: ChainRecord
        var segmentPath: String?
    }

    /// Inserts a segment and, when the ring seals, its chain record: both or neither.
    @discardableResult
    /// - Parameter filing: nil files `chain` now; otherwise the row only names `chain` and these
    ///   records (earlier segments' and perhaps its own) are filed in the chain table.
    func insert(relativePath: String, origin: SegmentOrigin, end: Timestamp, bytes: Int64, sha256: String,
                recovered: Bool, flagged: Bool = false, uploaded: Bool = false, chain: ChainRow? = nil,
                filing: [ChainRow]? = nil, activity: ActivitySummary? = nil) async throws(RingError) -> Segment {
        try await transaction { db throws(RingError) in
            let segment = try await Self.insertSegment(db, relativePath: relativePath, origin: origin, end: end, bytes: bytes, sha256: sha256,
                                                       recovered: recovered, flagged: flagged, uploaded: uploaded, activity: activity,
                                                       chainSeq: chain.flatMap { $0.segmentPath == nil ? nil : $0.record.seq })
            for row in filing ?? (chain.map { [$0] } ?? []) { try await Self.file(db, row) }
            return segment
        }
    }

    /// Files records in the chain table (their segments' rows already name them).
    /// A record whose sequence number the table already holds (a seal whose segment's row was
    /// never written, its number then sealed again) is not filed twice and never blocks the
    /// segment being indexed: it stays in its file's seal box, and `verifyChain` names the link.
    static func file(_ db: Statements, _ row: ChainRow) async throws(RingError) {
        _ = try await db.run("""
            INSERT OR IGNORE INTO chain (seq, kind, camera, start_ms, end_ms, segment_path, hash, body, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.integer(Int(row.record.seq)), .text(row.record.kind.rawValue), .text(row.record.camera), .integer(Int(row.record.startMs)),
                  .integer(Int(row.record.endMs)), row.segmentPath.map { .text($0) } ?? .null, .text(row.sealed.hash),
                  .text(row.sealed.body), .text(row.sealed.signature)])
    }

    func file(_ rows: [ChainRow]) async throws(RingError) {
        guard !rows.isEmpty else { return }
        try await transaction { db throws(RingError) in
            for row in rows { try await Self.file(db, row) }
        }
    }

    /// Rows past which an unfiled record is never looked for: the recorder files every few
    /// segments, so only the newest rows can name a record the chain table lacks.
    static let unfiledWindow = 64

    /// The newest segments whose rows name a record the chain table does not hold yet, in
    /// chain order.
    func unfiledSegments() async throws(RingError) -> [(path: String, seq: Int64)] {
        try await run("""
            SELECT path, chain_seq FROM segment
            WHERE id > (SELECT COALESCE(MAX(id), 0) FROM segment) - ? AND chain_seq IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM chain c WHERE c.seq = segment.chain_seq)
            ORDER BY chain_seq
            """, [.integer(Self.unfiledWindow)]).compactMap { row in
            guard let path = row.column("path")?.string, let seq = row.column("chain_seq")?.integer else { return nil }
            return (path, Int64(seq))
        }
    }

    static func insertChain(_ db: Statements, _ row: ChainRow) async throws(RingError) {
        try await file(db, row)
        if let path = row.segmentPath {
            _ = try await db.run("UPDATE segment SET chain_seq = ? WHERE path = ?", [.integer(Int(row.record.seq)), .text(path)])
        }
    }

    /// The newest record's sequence number and hash, or nil before the first.
    func chainHead() async throws(RingError) -> (seq: Int64, hash: String)? {
        try await run("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").first.map {
            (Int64($0.column("seq")?.integer ?? 0), $0.column("hash")?.string ?? "")
        }
    }

    /// The gap records sealed since the newest segment's (the next seal box carries them).
    func trailingGaps(limit: Int) async throws(RingError) -> [SealedRecord] {
        try await run("""
            SELECT body, signature FROM chain WHERE seq > COALESCE((SELECT seq FROM chain WHERE kind = 'segment' ORDER BY seq DESC LIMIT 1), 0)
            ORDER BY seq DESC LIMIT ?
            """, [.integer(limit)]).reversed().map {
            SealedRecord(body: $0.column("body")?.string ?? "", signature: $0.column("signature")?.string ?? "")
        }
    }

    /// The hash of record `seq`, or nil when the index has none.
    func chainHash(seq: Int64) async throws(RingError) -> String? {
        try await run("SELECT hash FROM chain WHERE seq = ?", [.integer(Int(seq))]).first?.column("hash")?.string
    }

    /// Puts back records read from the files (reindex, recovery), each once.
    func insertChain(_ rows: [ChainRow]) async throws(RingError) {
        guard !rows.isEmpty else { return }
        try await transaction { db throws(RingError) in
            for row in rows { try await Self.insertChain(db, row) }
        }
    }

    /// Sealed records in order; `after` a sequence number, at most `limit`.
    func chain(after: Int64 = 0, limit: Int = 1_000_000) async throws(RingError) -> [SealedRecord] {
        try await run("SELECT body, signature FROM chain WHERE seq > ? ORDER BY seq LIMIT ?", [.integer(Int(after)), .integer(limit)]).map {
            SealedRecord(body: $0.column("body")?.string ?? "", signature: $0.column("signature")?.string ?? "")
        }
    }

    static func insertSegment(_ db: Statements, relativePath: String, origin: SegmentOrigin, end: Timestamp, bytes: Int64, sha256: String,
                              recovered: Bool, flagged: Bool, uploaded: Bool, activity: ActivitySummary? = nil,
                              chainSeq: Int64? = nil) async throws(RingError) -> Segment {
        let rows = try await db.run("""
            INSERT INTO segment (camera, path, start_ms, end_ms, mono_start_ns, boot_id, clock_synced, bytes, sha256, codec, recovered, flagged, uploaded, activity, chain_seq)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                    ?12 OR EXISTS (SELECT 1 FROM flag WHERE state != 'released' AND camera = ?1 AND pin_to_ms > ?3 AND pin_from_ms < ?4),
                    ?13, ?14, ?15)
            RETURNING \(Self.segmentColumns)
            """, [.text(origin.camera), .text(relativePath), .integer(Int(origin.start.milliseconds)),
                  .integer(Int(max(end.milliseconds, origin.start.milliseconds))), .integer(Int(origin.monotonicNanos)),
                  .text(origin.bootID), .integer(origin.clockSynchronized ? 1 : 0), .integer(Int(bytes)),
                  .text(sha256), .text(origin.codec), .integer(recovered ? 1 : 0), .integer(flagged ? 1 : 0), .integer(uploaded ? 1 : 0),
                  activity.map { .blob(ByteBuffer(bytes: $0.encoded)) } ?? .null, chainSeq.map { .integer(Int($0)) } ?? .null])
        guard let row = rows.first else { throw RingError(.index, "insert returned no row", path: relativePath) }
        return Self.segment(from: row)
    }

    func segments(camera: String?, from: Timestamp?, to: Timestamp?, includeDeleting: Bool = false) async throws(RingError) -> [Segment] {
        var sql = "SELECT \(Self.segmentColumns) FROM segment WHERE 1=1"
        var binds: [SQLiteData] = []
        if !includeDeleting { sql += " AND state = 'live'" }
        if let camera { sql += " AND camera = ?"; binds.append(.text(camera)) }
        if let from { sql += " AND end_ms > ?"; binds.append(.integer(Int(from.milliseconds))) }
        if let to { sql += " AND start_ms < ?"; binds.append(.integer(Int(to.milliseconds))) }
        sql += " ORDER BY start_ms, id"
        return try await run(sql, binds).map(Self.segment(from:))
    }

    func deleting() async throws(RingError) -> [Segment] {
        try await run("SELECT \(Self.segmentColumns) FROM segment WHERE state = 'deleting'").map(Self.segment(from:))
    }

    struct Totals: Sendable { var count: Int64; var bytes: Int64; var pinnedBytes: Int64; var largestRecent: Int64 }

    func totals() async throws(RingError) -> Totals {
        let row = try await run("""
            SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b,
                   COALESCE(SUM(CASE WHEN flagged = 1 AND uploaded = 0 THEN bytes ELSE 0 END), 0) AS p,
                   (SELECT COALESCE(MAX(bytes), 0) FROM (SELECT bytes FROM segment ORDER BY id DESC LIMIT 30)) AS r
            FROM segment WHERE state = 'live'
            """).first
        func v(_ c: String) -> Int64 { Int64(row?.column(c)?.integer ?? 0) }
        return Totals(count: v("n"), bytes: v("b"), pinnedBytes: v("p"), largestRecent: v("r"))
    }

    /// Oldest unpinned live segments, oldest first, up to `limit`.
    func evictionCandidates(limit: Int) async throws(RingError) -> [Segment] {
        try await run("""
            SELECT \(Self.segmentColumns) FROM segment
            WHERE state = 'live' AND (flagged = 0 OR uploaded = 1)
            ORDER BY start_ms, id LIMIT ?
            """, [.integer(limit)]).map(Self.segment(from:))
    }

    /// Step 1 of deletion: the rows say "deleting" before any file is unlinked.
    func markDeleting(_ ids: [Int64]) async throws(RingError) {
        guard !ids.isEmpty else { return }
        _ = try await run("UPDATE segment SET state = 'deleting' WHERE id IN (\(ids.map(String.init).joined(separator: ",")))")
    }

    /// Step 3 of deletion: the files are gone, drop the rows (remembering how far back each
    /// camera's footage is now overwritten).
    func drop(_ ids: [Int64]) async throws(RingError) {
        guard !ids.isEmpty else { return }
        let list = ids.map(String.init).joined(separator: ",")
        try await transaction { db throws(RingError) in
            _ = try await db.run("""
                INSERT INTO evicted (camera, from_ms, through_ms)
                SELECT camera, MIN(start_ms), MAX(end_ms) FROM segment WHERE id IN (\(list)) GROUP BY camera
                ON CONFLICT (camera) DO UPDATE SET from_ms = MIN(from_ms, excluded.from_ms), through_ms = MAX(through_ms, excluded.through_ms)
                """)
            _ = try await db.run("DELETE FROM segment WHERE id IN (\(list))")
        }
    }

    func update(id: Int64, end: Timestamp, bytes: Int64, sha256: String) async throws(RingError) {
        _ = try await run("UPDATE segment SET end_ms = MAX(start_ms, ?), bytes = ?, sha256 = ?, recovered = 1 WHERE id = ?",
                          [.integer(Int(end.milliseconds)), .integer(Int(bytes)), .text(sha256), .integer(Int(id))])
    }

    /// A gap and its record, after `filing` (segments' records still unfiled: the gap's follows them).
    func insertGap(_ gap: Gap, chain: ChainRow? = nil, filing: [ChainRow] = []) async throws(RingError) {
        try await transaction { db throws(RingError) in
            for row in filing { try await Self.file(db, row) }
            _ = try await db.run("INSERT INTO gap (camera, start_ms, end_ms, reason) VALUES (?, ?, ?, ?)",
                                 [.text(gap.camera), .integer(Int(gap.start.milliseconds)), .integer(Int(max(gap.end, gap.start).milliseconds)), .text(gap.reason)])
            if let chain { try await Self.insertChain(db, chain) }
        }
    }

    func gaps(camera: String?, from: Timestamp?, to: Timestamp?) async throws(RingError) -> [Gap] {
        var sql = "SELECT camera, start_ms, end_ms, reason FROM gap WHERE 1=1"
        var binds: [SQLiteData] = []
        if let camera { sql += " AND camera = ?"; binds.append(.text(camera)) }
        if let from { sql += " AND end_ms > ?"; binds.append(.integer(Int(from.milliseconds))) }
        if let to { sql += " AND start_ms < ?"; binds.append(.integer(Int(to.milliseconds))) }
        sql += " ORDER BY start_ms"
        return try await run(sql, binds).map { row in
            Gap(camera: row.column("camera")?.string ?? "",
                start: Timestamp(milliseconds: Int64(row.column("start_ms")?.integer ?? 0)),
                end: Timestamp(milliseconds: Int64(row.column("end_ms")?.integer ?? 0)),
                reason: row.column("reason")?.string ?? "")
        }
    }

    /// Start of the oldest and end of the newest live segment of a camera (indexed lookups).
    func span(camera: String) async throws(RingError) -> (oldest: Timestamp, newest: Timestamp)? {
        let row = try await run("SELECT MIN(start_ms) AS s, MAX(end_ms) AS e FROM segment WHERE camera = ? AND state = 'live'",
                                [.text(camera)]).first
        guard let s = row?.column("s")?.integer, let e = row?.column("e")?.integer else { return nil }
        return (Timestamp(milliseconds: Int64(s)), Timestamp(milliseconds: Int64(e)))
    }

    /// Start of the oldest live segment (one indexed lookup, not a scan of the ring).
    func oldestStart() async throws(RingError) -> Timestamp? {
        try await run("SELECT MIN(start_ms) AS s FROM segment WHERE state = 'live'").first?
            .column("s")?.integer.map { Timestamp(milliseconds: Int64($0)) }
    }

    /// The span of `camera`'s footage the ring has overwritten (oldest start, newest end), if any.
    func evicted(camera: String) async throws(RingError) -> (from: Timestamp, through: Timestamp)? {
        guard let row = try await run("SELECT from_ms, through_ms FROM evicted WHERE camera = ?", [.text(camera)]).first,
              let a = row.column("from_ms")?.integer, let b = row.column("through_ms")?.integer else { return nil }
        return (Timestamp(milliseconds: Int64(a)), Timestamp(milliseconds: Int64(b)))
    }

    /// Gaps older than the oldest segment describe footage the ring no longer has: forget them.
    func pruneGaps(before: Timestamp) async throws(RingError) {
        _ = try await run("DELETE FROM gap WHERE end_ms < ?", [.integer(Int(before.milliseconds))])
    }

    func deleteAllSegments() async throws(RingError) {
        _ = try await run("DELETE FROM segment")
    }

    func integrityCheck() async throws(RingError) -> String {
        try await run("PRAGMA integrity_check").first?.column("integrity_check")?.string ?? "no answer"
    }
}
