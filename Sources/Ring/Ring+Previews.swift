import SystemCrypto
import SQLiteNIO
import Wire

/// A footage request's preview (issue 14): wanted when the box takes the request, made from the
/// keyframes on the card (by Media, which the uplink is handed), kept in `previews/` and
/// uploaded before any of the request's video; its upload resumes across reboots like a
/// segment's. The file goes once the commune has it whole.
extension Ring {
    public struct Preview: Sendable, Equatable {
        public enum State: String, Sendable {
            case wanted, ready, uploaded
            /// Nothing of the range was on the card when it was made.
            case empty
            /// It could not be made (`lastError` says why); the video still goes.
            case failed
        }
        public var flagID: Int64
        public var requestID: String
        public var state: State
        public var path: String?
        public var bytes: Int64
        public var sha256: String?
        public var pictures: Int
        public var from: Timestamp?
        public var to: Timestamp?
        public var upload: UploadState
    }

    public nonisolated var previewsRoot: String { configuration.root + "/previews" }

    /// Asks for a preview of a request's flag (once: asking again changes nothing).
    public func wantPreview(flagID: Int64, requestID: String, now: Timestamp = .now()) async throws(RingError) {
        _ = try await index.run("""
            INSERT OR IGNORE INTO preview (flag_id, request_id, state, updated_ms) VALUES (?, ?, 'wanted', ?)
            """, [.integer(Int(flagID)), .text(requestID), .integer(Int(now.milliseconds))])
    }

    /// Previews in `states`, oldest flag first, due now (upload backoff).
    public func previews(_ states: [Preview.State], now: Timestamp = .now()) async throws(RingError) -> [Preview] {
        let marks = states.map { _ in "?" }.joined(separator: ", ")
        let rows = try await index.run("""
            SELECT p.* FROM preview p JOIN flag f ON f.id = p.flag_id
            WHERE p.state IN (\(marks)) AND f.state != 'released' AND p.retry_after_ms <= ? ORDER BY p.flag_id
            """, states.map { .text($0.rawValue) } + [.integer(Int(now.milliseconds))])
        return rows.map { r in
            func ms(_ k: String) -> Timestamp? { r.column(k)?.integer.map { Timestamp(milliseconds: Int64($0)) } }
            return Preview(flagID: Int64(r.column("flag_id")?.integer ?? 0), requestID: r.column("request_id")?.string ?? "",
                           state: Preview.State(rawValue: r.column("state")?.string ?? "") ?? .failed, path: r.column("path")?.string,
                           bytes: Int64(r.column("bytes")?.integer ?? 0), sha256: r.column("sha256")?.string,
                           pictures: r.column("pictures")?.integer ?? 0, from: ms("from_ms"), to: ms("to_ms"),
                           upload: UploadState(url: r.column("url")?.string, offset: Int64(r.column("offset_bytes")?.integer ?? 0),
                                               attempts: r.column("attempts")?.integer ?? 0, lastError: r.column("last_error")?.string))
        }
    }

    /// The segment files a preview of `flag` is made from, in time order, with their paths on the card.
    public func previewSources(flagID: Int64) async throws(RingError) -> (flag: Flag, segments: [(path: String, start: Timestamp)])? {
        guard let flag = try await flags(includeReleased: false).first(where: { $0.id == flagID }) else { return nil }
        let segments = try await index.segments(camera: flag.camera, from: flag.from, to: flag.to)
        return (flag, segments.map { (path(of: $0), $0.start) })
    }

    /// Keeps a made preview: written and synced to `previews/flag-N.jpv` first, then its row
    /// says `ready` (a crash between leaves a file the next `wanted` pass rewrites). No
    /// pictures: the row says `empty` and nothing is sent.
    public func keepPreview(flagID: Int64, pictures: [PreviewSheet.Picture], now: Timestamp = .now()) async throws(RingError) {
        guard !pictures.isEmpty else {
            _ = try await index.run("UPDATE preview SET state = 'empty', updated_ms = ? WHERE flag_id = ? AND state = 'wanted'",
                                    [.integer(Int(now.milliseconds)), .integer(Int(flagID))])
            return
        }
        let order = PreviewSheet.coarseToFine(pictures.count)
        let bytes = PreviewSheet.encode(order.map { pictures[$0] })
        let relative = "flag-\(flagID).jpv"
        let root = previewsRoot
        try await blocking {
            try FileSystem.makeDirectories(root)
            try FileSystem.writeAtomically(bytes, to: root + "/" + relative)
        }
        let times = pictures.map(\.at)
        _ = try await index.run("""
            UPDATE preview SET state = 'ready', path = ?, bytes = ?, sha256 = ?, pictures = ?, from_ms = ?, to_ms = ?, updated_ms = ?
            WHERE flag_id = ? AND state = 'wanted'
            """, [.text(relative), .integer(bytes.count), .text(hex(SHA256.hash(data: bytes))), .integer(pictures.count),
                  .integer(Int(times.min()!.milliseconds)), .integer(Int(times.max()!.milliseconds)),
                  .integer(Int(now.milliseconds)), .integer(Int(flagID))])
    }

    /// A preview that could not be made or that the commune refused: kept with why (the log
    /// says it), its file removed; not retried.
    public func previewFailed(flagID: Int64, why: String, now: Timestamp = .now()) async throws(RingError) {
        let rows = try await index.run("UPDATE preview SET state = 'failed', last_error = ?, updated_ms = ? WHERE flag_id = ? RETURNING path",
                                       [.text(String(why.prefix(500))), .integer(Int(now.milliseconds)), .integer(Int(flagID))])
        if let relative = rows.first?.column("path")?.string {
            let file = previewsRoot + "/" + relative
            try? await blocking { try FileSystem.remove(file) }
        }
    }

    public nonisolated func previewPath(_ p: Preview) -> String? { p.path.map { previewsRoot + "/" + $0 } }

    /// Keeps a preview upload's progress for after a reboot.
    public func savePreviewUpload(flagID: Int64, _ state: UploadState, now: Timestamp = .now()) async throws(RingError) {
        _ = try await index.run("""
            UPDATE preview SET url = ?, offset_bytes = ?, attempts = ?, last_error = ?, updated_ms = ? WHERE flag_id = ?
            """, [state.url.map { .text($0) } ?? .null, .integer(Int(state.offset)), .integer(state.attempts),
                  state.lastError.map { .text($0) } ?? .null, .integer(Int(now.milliseconds)), .integer(Int(flagID))])
    }

    /// Puts a preview's upload off until `until`, counting the failure.
    public func deferPreview(flagID: Int64, until: Timestamp, reason: String, now: Timestamp = .now()) async throws(RingError) {
        _ = try await index.run("""
            UPDATE preview SET attempts = attempts + 1, last_error = ?, retry_after_ms = ?, updated_ms = ? WHERE flag_id = ?
            """, [.text(reason), .integer(Int(until.milliseconds)), .integer(Int(now.milliseconds)), .integer(Int(flagID))])
    }

    /// The commune has the whole preview: its file leaves the card.
    public func markPreviewUploaded(flagID: Int64, now: Timestamp = .now()) async throws(RingError) {
        let rows = try await index.run("UPDATE preview SET state = 'uploaded', updated_ms = ? WHERE flag_id = ? RETURNING path",
                                       [.integer(Int(now.milliseconds)), .integer(Int(flagID))])
        if let relative = rows.first?.column("path")?.string {
            let file = previewsRoot + "/" + relative
            try? await blocking { try FileSystem.remove(file) }
        }
    }

    /// True when a preview is to be made or sent now (polled with `hasPendingUploads`).
    public func hasPendingPreviews(now: Timestamp = .now()) async throws(RingError) -> Bool {
        try await index.run("""
            SELECT 1 AS x FROM preview p JOIN flag f ON f.id = p.flag_id
            WHERE p.state IN ('wanted', 'ready') AND f.state != 'released' AND p.retry_after_ms <= ? LIMIT 1
            """, [.integer(Int(now.milliseconds))]).first != nil
    }

    /// Narrows a commune request's flag to `from..<to` (inside its range: the officer saw the
    /// preview and needs only part of it). Segments no flag covers any more lose their pin and
    /// leave the upload queue; what was uploaded stays uploaded. Returns the flag as it is now.
    public func narrow(flagID: Int64, from: Timestamp, to: Timestamp) async throws(RingError) -> Flag {
        guard let flag = try await flags(includeReleased: false).first(where: { $0.id == flagID }) else {
            throw RingError(.invalidArgument, "there is no open flag \(flagID)")
        }
        guard to > from, from >= flag.from, to <= flag.to else {
            throw RingError(.invalidArgument, "a flag can only be narrowed inside its range (\(flag.from.rfc3339) → \(flag.to.rfc3339))")
        }
        if from == flag.from && to == flag.to { return flag }
        let pinFrom = from + -(flag.from.seconds(since: flag.pinFrom)), pinTo = to + flag.pinTo.seconds(since: flag.to)
        try await index.transaction { db throws(RingError) in
            _ = try await db.run("UPDATE flag SET from_ms = ?, to_ms = ?, pin_from_ms = ?, pin_to_ms = ? WHERE id = ?",
                                 [.integer(Int(from.milliseconds)), .integer(Int(to.milliseconds)),
                                  .integer(Int(pinFrom.milliseconds)), .integer(Int(pinTo.milliseconds)), .integer(Int(flagID))])
            _ = try await db.run("""
                UPDATE segment SET flagged = EXISTS (
                    SELECT 1 FROM flag f WHERE f.state != 'released' AND f.camera = segment.camera
                    AND segment.end_ms > f.pin_from_ms AND segment.start_ms < f.pin_to_ms)
                WHERE flagged = 1 AND camera = ?
                """, [.text(flag.camera)])
        }
        logger.notice("flag narrowed", metadata: ["id": "\(flagID)", "from": "\(from)", "to": "\(to)"])
        guard let narrowed = try await flags(includeReleased: true).first(where: { $0.id == flagID }) else {
            throw RingError(.index, "the narrowed flag \(flagID) could not be read back")
        }
        await journalFlag(narrowed)
        return narrowed
    }

    /// Whether a segment is still pinned for upload (a narrowed request stops the upload of one
    /// it no longer covers between two chunks).
    public func stillWanted(segmentID: Int64) async throws(RingError) -> Bool {
        try await index.run("SELECT 1 AS x FROM segment WHERE id = ? AND flagged = 1 AND uploaded = 0 AND state = 'live'",
                            [.integer(Int(segmentID))]).first != nil
    }
}
