import Evidence
import SQLiteNIO
import Wire

/// Footage requests: an operator asks a device for a time range; the box picks the request up at
/// its next heartbeat and reports coverage until nothing of it is pending any more.
extension Catalog {
    public struct Request: Sendable, Codable, Equatable {
        public enum State: String, Sendable, Codable {
            /// The box has not picked it up yet.
            case waiting
            /// The box has it; some of it is still on its way.
            case accepted
            /// Nothing is pending: every part is uploaded, not recorded or evicted.
            case complete
            /// The box could not take it (see `error`).
            case refused
        }
        public var id: String
        public var device: String
        public var camera: String?
        public var from: Timestamp
        public var to: Timestamp
        public var reason: String?
        public var state: State
        public var coverage: [CoverageSpan]
        public var error: String?
        public var createdAt: Timestamp
        public var updatedAt: Timestamp

        enum CodingKeys: String, CodingKey {
            case id, device, camera, from, to, reason, state, coverage, error
            case createdAt = "created_at", updatedAt = "updated_at"
        }

        public var footageRequest: FootageRequest { FootageRequest(id: id, camera: camera, from: from, to: to, reason: reason) }
    }

    public enum RequestError: Error, CustomStringConvertible {
        case unknownDevice(String)
        case emptyRange
        case tooLong
        case badText(String)
        public var description: String {
            switch self {
            case .unknownDevice(let d): "there is no device \(d) (commune devices lists them)"
            case .emptyRange: "the range is empty: --to must be after --from"
            case .tooLong: "the range is longer than 31 days (what a box flags at most): ask for shorter ranges"
            case .badText(let why): why
            }
        }
    }

    public func addRequest(device: String, camera: String?, from: Timestamp, to: Timestamp, reason: String?,
                           now: Timestamp = .now()) async throws -> Request {
        guard to > from else { throw RequestError.emptyRange }
        // What a box reads of an answer (`FootageRequest`): a longer range would be refused there.
        guard to.milliseconds(since: from) <= FootageRequest.maxSeconds * 1000 else { throw RequestError.tooLong }
        if let camera, !PlainName.isValid(camera) { throw RequestError.badText(PlainName.problem(camera, what: "camera")) }
        if let reason, reason.count > FootageRequest.maxReasonCharacters {
            throw RequestError.badText("the reason is longer than \(FootageRequest.maxReasonCharacters) characters: give a case number and a few words")
        }
        guard try await query("SELECT 1 FROM device WHERE id = ?", [.text(device)]).first != nil else {
            throw RequestError.unknownDevice(device)
        }
        var rng = SystemRandomNumberGenerator()
        let id = "req-" + hex((0..<6).map { _ in UInt8.random(in: 0...255, using: &rng) })
        _ = try await query("""
            INSERT INTO request (id, device, camera, from_ms, to_ms, reason, state, created_ms, updated_ms)
            VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?)
            """, [.text(id), .text(device), camera.map { .text($0) } ?? .null, .integer(Int(from.milliseconds)),
                  .integer(Int(to.milliseconds)), reason.map { .text($0) } ?? .null,
                  .integer(Int(now.milliseconds)), .integer(Int(now.milliseconds))])
        return try await requests(id: id).first!
    }

    /// Requests, oldest first, with coverage brought up to date from the clips that arrived
    /// (a clip the box has since overwritten still counts as uploaded).
    public func requests(device: String? = nil, id: String? = nil, openOnly: Bool = false) async throws -> [Request] {
        var sql = "SELECT * FROM request WHERE 1=1"
        var binds: [SQLiteData] = []
        if let device { sql += " AND device = ?"; binds.append(.text(device)) }
        if let id { sql += " AND id = ?"; binds.append(.text(id)) }
        // Refused ones stay open: the box tries again at each heartbeat (its pins may free up).
        if openOnly { sql += " AND state IN ('waiting', 'accepted', 'refused')" }
        sql += " ORDER BY created_ms, id"
        var out: [Request] = []
        for r in try await query(sql, binds) {
            func ms(_ k: String) -> Timestamp { Timestamp(milliseconds: Int64(r.column(k)?.integer ?? 0)) }
            var request = Request(
                id: r.column("id")?.string ?? "", device: r.column("device")?.string ?? "", camera: r.column("camera")?.string,
                from: ms("from_ms"), to: ms("to_ms"), reason: r.column("reason")?.string,
                state: Request.State(rawValue: r.column("state")?.string ?? "") ?? .waiting,
                coverage: r.column("coverage")?.string.flatMap { try? Heartbeat.decode([CoverageSpan].self, from: Array($0.utf8)) } ?? [],
                error: r.column("error")?.string, createdAt: ms("created_ms"), updatedAt: ms("updated_ms"))
            // Stored coverage already has every clip that had arrived by its last report: paint
            // only the clips since (work proportional to what changed). A complete request has
            // nothing pending left to paint over.
            if request.state == .accepted {
                request.coverage = try await withClips(request.coverage, request: request, receivedSince: request.updatedAt)
                if Coverage.isSettled(request.coverage) { request.state = .complete }
            }
            out.append(request)
        }
        return out
    }

    /// Paints the clips the server holds for the request's device (those received since
    /// `receivedSince`, when given) over the box's coverage.
    func withClips(_ coverage: [CoverageSpan], request: Request, receivedSince: Timestamp? = nil) async throws -> [CoverageSpan] {
        var sql = "SELECT start_ms, end_ms FROM clip WHERE device = ? AND end_ms > ? AND start_ms < ?"
        var binds: [SQLiteData] = [.text(request.device), .integer(Int(request.from.milliseconds)), .integer(Int(request.to.milliseconds))]
        if let receivedSince { sql += " AND received_ms >= ?"; binds.append(.integer(Int(receivedSince.milliseconds))) }
        if let camera = request.camera { sql += " AND camera = ?"; binds.append(.text(camera)) }
        let clips = try await query(sql, binds).map {
            CoverageSpan(from: Timestamp(milliseconds: Int64($0.column("start_ms")?.integer ?? 0)),
                         to: Timestamp(milliseconds: Int64($0.column("end_ms")?.integer ?? 0)), status: .uploaded)
        }
        return Coverage.paint(from: request.from, to: request.to, base: .pending, layers: coverage + clips)
    }

    /// Takes a box's report on one of its requests (ignored when the request is not its own).
    public func report(device: String, _ report: Heartbeat.RequestReport, now: Timestamp = .now()) async throws {
        guard let request = try await requests(device: device, id: report.id).first else { return }
        let state: Request.State
        var coverage = report.coverage
        if report.error != nil {
            state = .refused
        } else {
            coverage = try await withClips(coverage, request: request)
            state = Coverage.isSettled(coverage) ? .complete : .accepted
        }
        _ = try await query("UPDATE request SET state = ?, coverage = ?, error = ?, updated_ms = ? WHERE id = ?", [
            .text(state.rawValue), .text(String(decoding: try Heartbeat.encode(coverage), as: UTF8.self)),
            report.error.map { .text($0) } ?? .null, .integer(Int(now.milliseconds)), .text(report.id),
        ])
    }
}
