import SQLiteNIO
import Wire

/// Releases and rollouts (issue 24): the catalog keeps them; `fleet(device:report:…)`, called
/// from each heartbeat, moves the box's part on, the rollout with it, and says whether to offer
/// the box the release.
extension Catalog {
    public struct Release: Sendable, Equatable, Codable {
        public var version: String
        public var arch: String
        public var path: String
        public var bytes: Int64
        public var sha256: String
        public var minimumVersion: String
        public var signedBy: String
        public var notes: String?
        public var added: Timestamp
        public init(version: String, arch: String, path: String, bytes: Int64, sha256: String, minimumVersion: String, signedBy: String, notes: String?, added: Timestamp) {
            self.version = version
            self.arch = arch
            self.path = path
            self.bytes = bytes
            self.sha256 = sha256
            self.minimumVersion = minimumVersion
            self.signedBy = signedBy
            self.notes = notes
            self.added = added
        }
    }

    public func addRelease(_ r: Release) async throws {
        _ = try await query("""
            INSERT INTO release (version, arch, path, bytes, sha256, minimum_version, signed_by, notes, added_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.text(r.version), .text(r.arch), .text(r.path), .integer(Int(r.bytes)), .text(r.sha256), .text(r.minimumVersion),
                  .text(r.signedBy), r.notes.map { .text($0) } ?? .null, .integer(Int(r.added.milliseconds))])
    }

    public func releases() async throws -> [Release] {
        try await query("SELECT * FROM release ORDER BY added_ms, arch", []).compactMap(Self.release)
    }

    public func release(version: String, arch: String) async throws -> Release? {
        try await query("SELECT * FROM release WHERE version = ? AND arch = ?", [.text(version), .text(arch)]).compactMap(Self.release).first
    }

    static func release(_ r: SQLiteRow) -> Release? {
        guard let v = r.column("version")?.string, let a = r.column("arch")?.string, let p = r.column("path")?.string,
              let b = r.column("bytes")?.integer, let h = r.column("sha256")?.string, let m = r.column("minimum_version")?.string,
              let s = r.column("signed_by")?.string, let t = r.column("added_ms")?.integer else { return nil }
        return Release(version: v, arch: a, path: p, bytes: Int64(b), sha256: h, minimumVersion: m, signedBy: s, notes: r.column("notes")?.string,
                       added: Timestamp(milliseconds: Int64(t)))
    }

    public enum RolloutError: Error, Equatable, CustomStringConvertible {
        case noRelease(String, String)
        case alreadyRunning(String)
        case noBoxes(String)
        case unknown(String)
        public var description: String {
            switch self {
            case .noRelease(let v, let a): "there is no release \(v) for \(a): add it first (commune releases add BUNDLE)"
            case .alreadyRunning(let id): "rollout \(id) is running for these boxes: stop it first (commune rollout stop \(id))"
            case .noBoxes(let a): "no box has reported A/B slots on \(a) yet: boxes report after their first heartbeat from an image with updates"
            case .unknown(let id): "there is no rollout \(id)"
            }
        }
    }

    /// Starts a rollout of `version` to every box that reports slots on `arch`, in waves.
    public func startRollout(version: String, arch: String, waves: [Int?], maxFailedPercent: Int = 10, soakSeconds: Int = 3600,
                             maxDownloads: Int = 5, now: Timestamp = .now()) async throws -> (Rollout, [RolloutBox]) {
        guard try await release(version: version, arch: arch) != nil else { throw RolloutError.noRelease(version, arch) }
        if let running = try await rollouts().first(where: { $0.state == .running && $0.arch == arch }) { throw RolloutError.alreadyRunning(running.id) }
        let devices = try await updatable(arch: arch)
        guard !devices.isEmpty else { throw RolloutError.noBoxes(arch) }
        let id = "r-\(now.compact)-\(version)-\(arch)"
        let rollout = Rollout(id: id, version: version, arch: arch, waves: waves, state: .running, wave: 0, reason: nil,
                              maxFailedPercent: maxFailedPercent, soakSeconds: soakSeconds, maxDownloads: maxDownloads, created: now, updated: now)
        let boxes = rollout.assign(devices).map { RolloutBox(device: $0.0, wave: $0.1, updated: now) }
        try await transaction { db in
            _ = try await db.query("""
                INSERT INTO rollout (id, version, arch, waves, state, wave, reason, max_failed_percent, soak_seconds, max_downloads, created_ms, updated_ms)
                VALUES (?, ?, ?, ?, 'running', 0, NULL, ?, ?, ?, ?, ?)
                """, [.text(id), .text(version), .text(arch), .text(Rollout.describe(waves)), .integer(maxFailedPercent), .integer(soakSeconds),
                      .integer(maxDownloads), .integer(Int(now.milliseconds)), .integer(Int(now.milliseconds))])
            for b in boxes {
                _ = try await db.query("INSERT INTO rollout_box (rollout, device, wave, state, updated_ms) VALUES (?, ?, ?, 'waiting', ?)",
                                       [.text(id), .text(b.device), .integer(b.wave), .integer(Int(now.milliseconds))])
            }
        }
        return (rollout, boxes)
    }

    /// Devices whose last report says they can update on `arch`, by id.
    func updatable(arch: String) async throws -> [String] {
        try await query("SELECT id, update_report FROM device WHERE update_report IS NOT NULL ORDER BY id", []).compactMap { row in
            guard let id = row.column("id")?.string, let text = row.column("update_report")?.string,
                  let r = try? Heartbeat.decode(FleetUpdate.Report.self, from: Array(text.utf8)), r.arch == arch, r.canUpdate else { return nil }
            return id
        }
    }

    public func updateReport(device: String) async throws -> FleetUpdate.Report? {
        guard let text = try await query("SELECT update_report FROM device WHERE id = ?", [.text(device)]).first?.column("update_report")?.string else { return nil }
        return try? Heartbeat.decode(FleetUpdate.Report.self, from: Array(text.utf8))
    }

    /// Every box's last update report, by device (the desk's box list).
    public func updateReports() async throws -> [String: FleetUpdate.Report] {
        var all: [String: FleetUpdate.Report] = [:]
        for row in try await query("SELECT id, update_report FROM device WHERE update_report IS NOT NULL", []) {
            guard let id = row.column("id")?.string, let text = row.column("update_report")?.string,
                  let r = try? Heartbeat.decode(FleetUpdate.Report.self, from: Array(text.utf8)) else { continue }
            all[id] = r
        }
        return all
    }

    public func rollouts() async throws -> [Rollout] {
        try await query("SELECT * FROM rollout ORDER BY created_ms", []).compactMap(Self.rollout)
    }

    public func rollout(id: String) async throws -> (Rollout, [RolloutBox])? {
        guard let r = try await query("SELECT * FROM rollout WHERE id = ?", [.text(id)]).compactMap(Self.rollout).first else { return nil }
        return (r, try await rolloutBoxes(id))
    }

    func rolloutBoxes(_ id: String) async throws -> [RolloutBox] {
        try await query("SELECT * FROM rollout_box WHERE rollout = ? ORDER BY wave, device", [.text(id)]).compactMap { row in
            guard let d = row.column("device")?.string, let w = row.column("wave")?.integer, let s = row.column("state")?.string.flatMap(RolloutBox.State.init),
                  let u = row.column("updated_ms")?.integer else { return nil }
            return RolloutBox(device: d, wave: w, state: s, reason: row.column("reason")?.string, updated: Timestamp(milliseconds: Int64(u)),
                              blessedAt: row.column("blessed_ms")?.integer.map { Timestamp(milliseconds: Int64($0)) })
        }
    }

    static func rollout(_ row: SQLiteRow) -> Rollout? {
        guard let id = row.column("id")?.string, let v = row.column("version")?.string, let a = row.column("arch")?.string,
              let w = row.column("waves")?.string.flatMap(Rollout.parseWaves), let s = row.column("state")?.string.flatMap(Rollout.State.init),
              let wave = row.column("wave")?.integer, let f = row.column("max_failed_percent")?.integer, let soak = row.column("soak_seconds")?.integer,
              let k = row.column("max_downloads")?.integer, let c = row.column("created_ms")?.integer, let u = row.column("updated_ms")?.integer else { return nil }
        return Rollout(id: id, version: v, arch: a, waves: w, state: s, wave: wave, reason: row.column("reason")?.string, maxFailedPercent: f,
                       soakSeconds: soak, maxDownloads: k, created: Timestamp(milliseconds: Int64(c)), updated: Timestamp(milliseconds: Int64(u)))
    }

    func save(_ r: Rollout, _ db: SQLiteConnection) async throws {
        _ = try await db.query("UPDATE rollout SET state = ?, wave = ?, reason = ?, updated_ms = ? WHERE id = ?",
                               [.text(r.state.rawValue), .integer(r.wave), r.reason.map { .text($0) } ?? .null, .integer(Int(r.updated.milliseconds)), .text(r.id)])
    }

    func save(_ b: RolloutBox, rollout: String, _ db: SQLiteConnection) async throws {
        _ = try await db.query("""
            INSERT INTO rollout_box (rollout, device, wave, state, reason, updated_ms, blessed_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (rollout, device) DO UPDATE SET wave = excluded.wave, state = excluded.state, reason = excluded.reason,
                updated_ms = excluded.updated_ms, blessed_ms = excluded.blessed_ms
            """, [.text(rollout), .text(b.device), .integer(b.wave), .text(b.state.rawValue), b.reason.map { .text($0) } ?? .null,
                  .integer(Int(b.updated.milliseconds)), b.blessedAt.map { .integer(Int($0.milliseconds)) } ?? .null])
    }

    /// Stops a rollout (an operator's word): no box is offered it any more.
    public func stopRollout(id: String, reason: String, now: Timestamp = .now()) async throws {
        guard var (r, _) = try await rollout(id: id) else { throw RolloutError.unknown(id) }
        r.state = .stopped
        r.reason = reason
        r.updated = now
        let stopped = r
        try await transaction { db in try await self.save(stopped, db) }
    }

    /// Takes a box out of the penalty box: it is offered the release again (and told to retry it).
    public func retryRollout(id: String, device: String, now: Timestamp = .now()) async throws {
        guard let (_, boxes) = try await rollout(id: id), var b = boxes.first(where: { $0.device == device }) else { throw RolloutError.unknown("\(id) / \(device)") }
        b.state = .waiting
        b.reason = RolloutBox.retried
        b.updated = now
        let box = b
        try await transaction { db in try await self.save(box, rollout: id, db) }
    }

    /// A heartbeat's update report: kept for the desk, and the box's part in a running rollout
    /// moved on. Returns the offer for the answer (nil: none now) and what changed, for the log
    /// and the audit.
    public func fleet(device: String, report: FleetUpdate.Report, openRequest: Bool, recording: Bool,
                      now: Timestamp = .now()) async throws -> (FleetUpdate.Offer?, [String]) {
        await fleetGate.enter()
        do {
            let result = try await fleetStep(device: device, report: report, openRequest: openRequest, recording: recording, now: now)
            await fleetGate.leave()
            return result
        } catch {
            await fleetGate.leave()
            throw error
        }
    }

    func fleetStep(device: String, report: FleetUpdate.Report, openRequest: Bool, recording: Bool,
                   now: Timestamp) async throws -> (FleetUpdate.Offer?, [String]) {
        let encoded = String(decoding: try Heartbeat.encode(report), as: UTF8.self)
        _ = try await query("UPDATE device SET update_report = ? WHERE id = ?", [.text(encoded), .text(device)])
        guard report.canUpdate, var r = try await rollouts().last(where: { $0.state == .running && $0.arch == report.arch }) else { return (nil, []) }
        var boxes = try await rolloutBoxes(r.id)
        var events: [String] = []
        if !boxes.contains(where: { $0.device == device }) {
            // A box that joined after the start goes in the last wave.
            boxes.append(RolloutBox(device: device, wave: r.waves.count - 1, updated: now))
        }
        let i = boxes.firstIndex { $0.device == device }!
        let before = boxes[i]
        boxes[i] = RolloutEngine.advance(before, report: report, version: r.version, now: now)
        if boxes[i].state != before.state { events.append("\(device): \(before.state.rawValue) → \(boxes[i].state.rawValue)\(boxes[i].reason.map { " (\($0))" } ?? "")") }
        // Recording now: this box from its report; the others from their last health.
        var recordingNow = Set(try await devices().filter { $0.health?.recording == "recording" }.map(\.id))
        if recording { recordingNow.insert(device) } else { recordingNow.remove(device) }
        let (next, event) = RolloutEngine.step(r, boxes: boxes, recording: recordingNow, now: now)
        if let event { events.append("rollout \(r.id): \(event)") }
        r = next
        let downloading = boxes.filter { $0.state == .offered && $0.device != device }.count
        var offer: FleetUpdate.Offer?
        if report.release != r.version, RolloutEngine.offers(r, boxes[i], downloading: downloading, openRequest: openRequest),
           let release = try await release(version: r.version, arch: r.arch) {
            if boxes[i].state == .waiting { boxes[i].state = .offered; boxes[i].updated = now; events.append("\(device): offered \(r.version)") }
            offer = FleetUpdate.Offer(version: r.version, arch: r.arch, path: FleetUpdate.releasePath + "\(r.version)/\(r.arch)", bytes: release.bytes, rollout: r.id,
                                       retry: boxes[i].reason == RolloutBox.retried ? true : nil)
        }
        let box = boxes[i], rollout = r
        try await transaction { db in
            try await self.save(box, rollout: rollout.id, db)
            try await self.save(rollout, db)
        }
        for e in events { try await audit(operator: nil, address: "box \(device)", action: "rollout", detail: e, now: now) }
        return (offer, events)
    }
}
