import SQLiteNIO

/// Flags: footage that must leave the box. Flagging pins every segment overlapping the range
/// (plus pre- and post-roll) against eviction; a range still being recorded stays `open` and pins
/// each new segment as it is indexed, until its end has been recorded (`closed`). A pin is
/// released only when the segment is uploaded (acknowledged whole by the server) or the flag is
/// withdrawn. Pinned bytes are capped at `maxPinnedPercent` of the ring's budget.
extension Ring {
    public struct Flag: Sendable, Codable, Equatable {
        public enum Source: String, Sendable, Codable { case cli, request, motion }
        public enum State: String, Sendable, Codable {
            /// Its end has not been recorded yet: new segments in range are pinned as they come.
            case open
            /// All of it that exists is recorded and pinned.
            case closed
            /// Withdrawn (`junction unflag`): its pins are released.
            case released
        }
        public var id: Int64
        public var camera: String
        public var from: Timestamp
        public var to: Timestamp
        public var pinFrom: Timestamp
        public var pinTo: Timestamp
        public var reason: String?
        public var source: Source
        public var requestID: String?
        public var createdAt: Timestamp
        public var state: State
        /// Segments in range, their bytes, and how many of them are uploaded.
        public var segments: Int = 0
        public var bytes: Int64 = 0
        public var uploadedSegments: Int = 0

        enum CodingKeys: String, CodingKey {
            case id, camera, from, to, reason, source, state, segments, bytes
            case pinFrom = "pin_from", pinTo = "pin_to", requestID = "request_id", createdAt = "created_at"
            case uploadedSegments = "uploaded_segments"
        }
    }

    public struct FlagRequest: Sendable {
        public var camera: String
        public var from: Timestamp
        public var to: Timestamp
        public var reason: String?
        public var source: Flag.Source
        public var requestID: String?
        public var preRollSeconds: Double
        public var postRollSeconds: Double

        public init(camera: String, from: Timestamp, to: Timestamp, reason: String? = nil, source: Flag.Source = .cli,
                    requestID: String? = nil, preRollSeconds: Double = 0, postRollSeconds: Double = 0) {
            self.camera = camera
            self.from = from
            self.to = to
            self.reason = reason
            self.source = source
            self.requestID = requestID
            self.preRollSeconds = preRollSeconds
            self.postRollSeconds = postRollSeconds
        }
    }

    /// Bounds on a flag, whoever asks (CLI, control socket, commune request, motion): README,
    /// "Limits". A request past them is refused with what is allowed, before anything is read.
    public enum FlagLimits {
        public static let maxRollSeconds = 3600.0
        public static let maxRangeSeconds = 31.0 * 86400
        public static let maxReasonCharacters = 1000
        public static let maxCameraCharacters = 64
    }

    static func validate(_ r: FlagRequest) throws(RingError) {
        for (name, v) in [("pre-roll", r.preRollSeconds), ("post-roll", r.postRollSeconds)] {
            guard v.isFinite, v >= 0, v <= FlagLimits.maxRollSeconds else {
                throw RingError(.invalidArgument, "the \(name) must be 0 to \(Int(FlagLimits.maxRollSeconds)) seconds, not \(v)")
            }
        }
        guard r.to.seconds(since: r.from) <= FlagLimits.maxRangeSeconds else {
            throw RingError(.invalidArgument, "the range is longer than 31 days: flag the part that matters")
        }
        guard (r.reason?.count ?? 0) <= FlagLimits.maxReasonCharacters else {
            throw RingError(.invalidArgument, "the reason is longer than \(FlagLimits.maxReasonCharacters) characters: give a case number and a few words")
        }
        guard !r.camera.isEmpty, r.camera.count <= FlagLimits.maxCameraCharacters else {
            throw RingError(.invalidArgument, "the camera name must be 1 to \(FlagLimits.maxCameraCharacters) characters")
        }
    }

    /// Flags a range: pins what is recorded of it now, and what is recorded of it later.
    /// Refused with `.invalidArgument` (and a message that says what to do) when the range is
    /// empty, lies wholly before the oldest footage, or would take pinned bytes past the cap.
    public func flag(_ request: FlagRequest, now: Timestamp = .now()) async throws(RingError) -> Flag {
        try Self.validate(request)
        guard request.to > request.from else {
            throw RingError(.invalidArgument, "the range is empty: --to must be after --from")
        }
        let pinFrom = request.from + -request.preRollSeconds
        let pinTo = request.to + request.postRollSeconds
        let cap = pinnedCap(budget: try await budget().bytes)
        let maxPinnedPercent = configuration.maxPinnedPercent
        // One transaction: two flags at once cannot both pass the cap, and a refused or failed
        // flag leaves nothing behind. Sums in SQL, not every row loaded.
        let id = try await index.transaction { db throws(RingError) -> Int64 in
            let camera = SQLiteData.text(request.camera)
            let facts = try await db.run("""
                SELECT COUNT(*) AS n, MIN(start_ms) AS oldest,
                       COALESCE(SUM(CASE WHEN end_ms > ?2 AND start_ms < ?3 AND flagged = 0 AND uploaded = 0 THEN bytes ELSE 0 END), 0) AS new_bytes,
                       (SELECT COALESCE(SUM(bytes), 0) FROM segment WHERE state = 'live' AND flagged = 1 AND uploaded = 0) AS pinned
                FROM segment WHERE camera = ?1 AND state = 'live'
                """, [camera, .integer(Int(pinFrom.milliseconds)), .integer(Int(pinTo.milliseconds))]).first
            let count = facts?.column("n")?.integer ?? 0
            if let oldest = facts?.column("oldest")?.integer, pinTo <= Timestamp(milliseconds: Int64(oldest)) {
                throw RingError(.invalidArgument, "nothing left of this range: the ring's oldest footage starts at \(Timestamp(milliseconds: Int64(oldest))) (older footage was overwritten)")
            }
            if count == 0 && pinTo <= now {
                throw RingError(.invalidArgument, "nothing recorded in this range: the ring is empty")
            }
            let newBytes = Int64(facts?.column("new_bytes")?.integer ?? 0)
            let pinned = Int64(facts?.column("pinned")?.integer ?? 0)
            // What is still to be recorded of an open range, at the newest segment's data rate.
            var futureBytes: Int64 = 0
            if pinTo > now, let last = try await db.run("""
                SELECT bytes, end_ms - start_ms AS ms FROM segment WHERE camera = ? AND state = 'live' ORDER BY start_ms DESC, id DESC LIMIT 1
                """, [camera]).first, let bytes = last.column("bytes")?.integer, let ms = last.column("ms")?.integer, ms > 0 {
                let rate = Double(bytes) / (Double(ms) / 1000)
                futureBytes = Int64(min(rate * pinTo.seconds(since: max(now, pinFrom)), Double(Int64.max / 4)))
            }
            if pinned + newBytes + futureBytes > cap {
                throw RingError(.pinCapReached, """
                    flag refused: it would pin \(Self.format(newBytes + futureBytes)) more, and \(Self.format(pinned)) of the \
                    \(Self.format(cap)) cap (\(maxPinnedPercent) % of the ring) is already pinned \
                    waiting for upload. Flag a shorter range, withdraw an old flag (junction flags, junction unflag ID), \
                    or export to USB (junction export) and unflag.
                    """)
            }
            // Open while its end can still be recorded; a past end never will be beyond what is here.
            let state: Flag.State = pinTo > now ? .open : .closed
            let rows = try await db.run("""
                INSERT INTO flag (camera, from_ms, to_ms, pin_from_ms, pin_to_ms, reason, source, request_id, created_ms, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
                """, [camera, .integer(Int(request.from.milliseconds)), .integer(Int(request.to.milliseconds)),
                      .integer(Int(pinFrom.milliseconds)), .integer(Int(pinTo.milliseconds)),
                      request.reason.map { .text($0) } ?? .null, .text(request.source.rawValue),
                      request.requestID.map { .text($0) } ?? .null, .integer(Int(now.milliseconds)), .text(state.rawValue)])
            guard let id = rows.first?.column("id")?.integer else { throw RingError(.index, "flag insert returned no id") }
            _ = try await db.run("""
                UPDATE segment SET flagged = 1
                WHERE camera = ? AND state = 'live' AND end_ms > ? AND start_ms < ?
                """, [camera, .integer(Int(pinFrom.milliseconds)), .integer(Int(pinTo.milliseconds))])
            return Int64(id)
        }
        logger.notice("flagged", metadata: ["id": "\(id)", "from": "\(request.from)", "to": "\(request.to)", "source": "\(request.source.rawValue)"])
        guard let made = try await flags(includeReleased: true).first(where: { $0.id == id }) else {
            throw RingError(.index, "the new flag \(id) could not be read back")
        }
        await journalFlag(made)
        return made
    }

    /// Flags with what they pin, newest first.
    public func flags(includeReleased: Bool = false) async throws(RingError) -> [Flag] {
        let rows = try await index.run("""
            SELECT f.id, f.camera, f.from_ms, f.to_ms, f.pin_from_ms, f.pin_to_ms, f.reason, f.source, f.request_id,
                   f.created_ms, f.state,
                   (SELECT COUNT(*) FROM segment s WHERE s.state = 'live' AND s.camera = f.camera AND s.end_ms > f.pin_from_ms AND s.start_ms < f.pin_to_ms) AS n,
                   (SELECT COALESCE(SUM(bytes), 0) FROM segment s WHERE s.state = 'live' AND s.camera = f.camera AND s.end_ms > f.pin_from_ms AND s.start_ms < f.pin_to_ms) AS b,
                   (SELECT COUNT(*) FROM segment s WHERE s.state = 'live' AND s.uploaded = 1 AND s.camera = f.camera AND s.end_ms > f.pin_from_ms AND s.start_ms < f.pin_to_ms) AS u
            FROM flag f \(includeReleased ? "" : "WHERE f.state != 'released'") ORDER BY f.id DESC
            """)
        return rows.map { r in
            func ms(_ c: String) -> Timestamp { Timestamp(milliseconds: Int64(r.column(c)?.integer ?? 0)) }
            return Flag(id: Int64(r.column("id")?.integer ?? 0), camera: r.column("camera")?.string ?? "",
                        from: ms("from_ms"), to: ms("to_ms"), pinFrom: ms("pin_from_ms"), pinTo: ms("pin_to_ms"),
                        reason: r.column("reason")?.string, source: Flag.Source(rawValue: r.column("source")?.string ?? "") ?? .cli,
                        requestID: r.column("request_id")?.string, createdAt: ms("created_ms"),
                        state: Flag.State(rawValue: r.column("state")?.string ?? "") ?? .closed,
                        segments: Int(r.column("n")?.integer ?? 0), bytes: Int64(r.column("b")?.integer ?? 0),
                        uploadedSegments: Int(r.column("u")?.integer ?? 0))
        }
    }

    /// Withdraws a flag: segments no other flag covers are no longer pinned (uploads already
    /// made stay made).
    public func unflag(id: Int64) async throws(RingError) -> Flag {
        guard let flag = try await flags(includeReleased: true).first(where: { $0.id == id }) else {
            throw RingError(.invalidArgument, "there is no flag \(id): junction flags lists them")
        }
        guard flag.state != .released else { return flag }
        try await index.transaction { db throws(RingError) in
            _ = try await db.run("UPDATE flag SET state = 'released' WHERE id = ?", [.integer(Int(id))])
            _ = try await db.run("""
                UPDATE segment SET flagged = EXISTS (
                    SELECT 1 FROM flag f WHERE f.state != 'released' AND f.camera = segment.camera
                    AND segment.end_ms > f.pin_from_ms AND segment.start_ms < f.pin_to_ms)
                WHERE flagged = 1 AND camera = ?
                """, [.text(flag.camera)])
        }
        logger.notice("flag withdrawn", metadata: ["id": "\(id)"])
        await journalRelease(id)
        var released = flag
        released.state = .released
        return released
    }

    /// Open flags whose end is now recorded become closed (called after each commit).
    func closeFinishedFlags(camera: String, recordedUntil end: Timestamp) async throws(RingError) {
        _ = try await index.run("UPDATE flag SET state = 'closed' WHERE state = 'open' AND camera = ? AND pin_to_ms <= ?",
                                [.text(camera), .integer(Int(end.milliseconds))])
    }

    static func format(_ bytes: Int64) -> String {
        let mb = Double(bytes) / 1e6
        return mb >= 1000 ? "\(String(format1: mb / 1000)) GB" : "\(String(format1: mb)) MB"
    }
}
