/// The ring's side of uploading: which pinned segments still have to leave the box, how far each
/// upload got (kept across reboots), and releasing a pin once the server has the whole file.
extension Ring {
    /// Where an upload stands (tus URL, server offset, failures in a row, last error), as the
    /// uplink last saved it.
    public struct UploadState: Sendable, Equatable, Codable {
        public var url: String?
        public var offset: Int64
        public var attempts: Int
        public var lastError: String?

        public init(url: String? = nil, offset: Int64 = 0, attempts: Int = 0, lastError: String? = nil) {
            self.url = url
            self.offset = offset
            self.attempts = attempts
            self.lastError = lastError
        }
    }

    /// A pinned segment waiting to be uploaded, with why it was flagged.
    public struct QueuedUpload: Sendable, Equatable {
        public var segment: Segment
        public var flagID: Int64
        public var reason: String?
        public var requestID: String?
        public var state: UploadState
        /// The segment's chain record (issue 13), named in the upload's metadata.
        public var chainSeq: Int64? = nil
        /// Set when the card damaged the file: the SHA-256 of its bytes now, which it is sent
        /// with, declared damaged (issue 22).
        public var damagedSHA256: String? = nil
    }

    /// Flagged segments not yet uploaded: flags in the order they were made (requests in
    /// arrival order), oldest segment first within each (or newest first).
    public func uploadQueue(limit: Int = 100, newestFirst: Bool = false, now: Timestamp = .now()) async throws(RingError) -> [QueuedUpload] {
        let rows = try await index.run("""
            SELECT \(RingIndex.segmentColumns.split(separator: ",").map { "s." + String($0).trimmingSpaces }.joined(separator: ", ")),
                   f.id AS flag_id, f.reason AS flag_reason, f.request_id AS flag_request,
                   u.url AS up_url, COALESCE(u.offset_bytes, 0) AS up_offset, COALESCE(u.attempts, 0) AS up_attempts,
                   u.last_error AS up_error, s.chain_seq AS chain_seq, s.damaged_sha256 AS damaged_sha256
            FROM segment s
            JOIN flag f ON f.id = (SELECT MIN(g.id) FROM flag g WHERE g.state != 'released' AND g.camera = s.camera
                                   AND s.end_ms > g.pin_from_ms AND s.start_ms < g.pin_to_ms)
            LEFT JOIN upload u ON u.segment_id = s.id
            WHERE s.state = 'live' AND s.flagged = 1 AND s.uploaded = 0 AND COALESCE(u.retry_after_ms, 0) <= ?
            ORDER BY f.id, s.start_ms \(newestFirst ? "DESC" : "ASC")
            LIMIT ?
            """, [.integer(Int(now.milliseconds)), .integer(limit)])
        return rows.map { r in
            QueuedUpload(segment: RingIndex.segment(from: r), flagID: Int64(r.column("flag_id")?.integer ?? 0),
                         reason: r.column("flag_reason")?.string, requestID: r.column("flag_request")?.string,
                         state: UploadState(url: r.column("up_url")?.string, offset: Int64(r.column("up_offset")?.integer ?? 0),
                                            attempts: Int(r.column("up_attempts")?.integer ?? 0), lastError: r.column("up_error")?.string),
                         chainSeq: r.column("chain_seq")?.integer.map(Int64.init), damagedSHA256: r.column("damaged_sha256")?.string)
        }
    }

    /// True when a pinned segment waits for upload (one cheap indexed lookup, polled often).
    public func hasPendingUploads(now: Timestamp = .now()) async throws(RingError) -> Bool {
        try await index.run("""
            SELECT 1 AS x FROM segment s LEFT JOIN upload u ON u.segment_id = s.id
            WHERE s.flagged = 1 AND s.uploaded = 0 AND s.state = 'live' AND COALESCE(u.retry_after_ms, 0) <= ? LIMIT 1
            """, [.integer(Int(now.milliseconds))]).first != nil
    }

    /// Puts an upload back in the queue no sooner than `until` (per-upload backoff), counting
    /// the failure and keeping why.
    public func deferUpload(segmentID: Int64, until: Timestamp, reason: String, now: Timestamp = .now()) async throws(RingError) {
        _ = try await index.run("""
            INSERT INTO upload (segment_id, attempts, last_error, updated_ms, retry_after_ms) VALUES (?, 1, ?, ?, ?)
            ON CONFLICT (segment_id) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error,
                updated_ms = excluded.updated_ms, retry_after_ms = excluded.retry_after_ms
            """, [.integer(Int(segmentID)), .text(reason), .integer(Int(now.milliseconds)), .integer(Int(until.milliseconds))])
    }

    /// A segment whose file no longer has the SHA-256 recorded when it was written (the card
    /// damaged it): the file goes to quarantine untouched and leaves the ring and the queue.
    public func quarantineDamaged(_ segment: Segment, why: String) async throws(RingError) -> Finding {
        let finding = try await quarantine(segment.path, why: why)
        try await index.drop([segment.id])
        return finding
    }

    /// A flagged segment whose file the card changed (`sha256`: its bytes now): it is sent as
    /// it is, declared damaged, from the start (the commune discarded the upload that found it);
    /// the SHA-256 recorded when it was written stays the evidence, and after delivery the file
    /// goes to quarantine (issue 22: its intact fragments are still evidence; quarantining it
    /// at once lost them).
    public func markDamaged(segmentID: Int64, sha256: String) async throws(RingError) {
        try await index.transaction { db throws(RingError) in
            _ = try await db.run("UPDATE segment SET damaged_sha256 = ? WHERE id = ?", [.text(sha256), .integer(Int(segmentID))])
            _ = try await db.run("UPDATE upload SET url = NULL, offset_bytes = 0, retry_after_ms = 0 WHERE segment_id = ?", [.integer(Int(segmentID))])
        }
    }

    /// Keeps an upload's progress (URL, offset, attempts, last error) for after a reboot.
    public func saveUpload(segmentID: Int64, _ state: UploadState, now: Timestamp = .now()) async throws(RingError) {
        _ = try await index.run("""
            INSERT INTO upload (segment_id, url, offset_bytes, attempts, last_error, updated_ms) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (segment_id) DO UPDATE SET url = excluded.url, offset_bytes = excluded.offset_bytes,
                attempts = excluded.attempts, last_error = excluded.last_error, updated_ms = excluded.updated_ms
            """, [.integer(Int(segmentID)), state.url.map { .text($0) } ?? .null, .integer(Int(state.offset)),
                  .integer(state.attempts), state.lastError.map { .text($0) } ?? .null, .integer(Int(now.milliseconds))])
    }

    /// The server has acknowledged every byte: the pin is released (the segment may now be
    /// evicted like any other) and the progress row dropped.
    public func markUploaded(segmentID: Int64) async throws(RingError) {
        let path = try await index.transaction { db throws(RingError) in
            let rows = try await db.run("UPDATE segment SET uploaded = 1 WHERE id = ? RETURNING path", [.integer(Int(segmentID))])
            _ = try await db.run("DELETE FROM upload WHERE segment_id = ?", [.integer(Int(segmentID))])
            return rows.first?.column("path")?.string
        }
        if let path { await journalUploaded(path) }
    }
}
