import Config
import SQLiteNIO
import Wire

/// Settings sent to boxes (issue 24, item 7): each change is a revision of the keys it sets
/// (a TOML fragment the box lays over its installer's junction.toml). The newest revision the
/// box has not taken up rides on its heartbeat answers; the box's report says what became of it.
extension Catalog {
    public struct SettingsRevision: Sendable, Equatable, Codable {
        public var device: String
        public var revision: Int64
        public var toml: String
        public var sent: Timestamp
        public var sentBy: String?
        /// nil: not taken up by the box yet.
        public var result: RemoteSettings.Result?
        public var reason: String?
        public var resultAt: Timestamp?
        enum CodingKeys: String, CodingKey { case device, revision, toml, sent, sentBy = "sent_by", result, reason, resultAt = "result_at" }
    }

    public enum SettingsError: Error, Equatable, CustomStringConvertible {
        case unknownDevice(String)
        case invalid(String)
        public var description: String {
            switch self {
            case .unknownDevice(let d): "there is no box \(d): commune devices list shows the boxes registered"
            case .invalid(let why): "these settings cannot be sent: \(why)"
            }
        }
    }

    /// Keeps a new revision of `device`'s settings, to go out on its next heartbeat answer.
    /// The fragment is checked as far as the commune can (syntax, the keys the commune may set);
    /// the box checks the values over its own file.
    public func sendSettings(device: String, toml: String, by: String?, now: Timestamp = .now()) async throws -> Int64 {
        guard try await query("SELECT 1 FROM device WHERE id = ?", [.text(device)]).first != nil else { throw SettingsError.unknownDevice(device) }
        do { _ = try SettingsOverlay(revision: 1, text: toml).document() } catch {
            throw SettingsError.invalid("\(error.line.map { "line \($0): " } ?? "")\(error.key.map { "\($0): " } ?? "")\(error.message)")
        }
        let seen = try await settingsReport(device: device)?.seen ?? 0
        let revision: Int64 = try await transaction { db in
            let newest = try await db.query("SELECT MAX(revision) AS r FROM device_settings WHERE device = ?", [.text(device)]).first?.column("r")?.integer ?? 0
            let next = max(Int64(newest), seen) + 1
            guard RemoteSettings.revisions.contains(next) else { throw SettingsError.invalid("revision \(next) is past the bound \(RemoteSettings.revisions.upperBound)") }
            _ = try await db.query("INSERT INTO device_settings (device, revision, toml, sent_ms, sent_by) VALUES (?, ?, ?, ?, ?)",
                                   [.text(device), .integer(Int(next)), .text(toml), .integer(Int(now.milliseconds)), by.map { .text($0) } ?? .null])
            return next
        }
        try await audit(operator: by, address: "cli", action: "settings sent", detail: "\(device) revision \(revision)", now: now)
        return revision
    }

    /// Every revision sent to `device`, newest first.
    public func settingsRevisions(device: String) async throws -> [SettingsRevision] {
        try await query("SELECT * FROM device_settings WHERE device = ? ORDER BY revision DESC", [.text(device)]).compactMap(Self.settingsRevision)
    }

    public func settingsReport(device: String) async throws -> RemoteSettings.Report? {
        guard let text = try await query("SELECT settings_report FROM device WHERE id = ?", [.text(device)]).first?.column("settings_report")?.string else { return nil }
        return try? Heartbeat.decode(RemoteSettings.Report.self, from: Array(text.utf8))
    }

    /// Every box's last settings report, and its newest revision sent (for the desk's box list).
    public func settingsOverview() async throws -> [String: (report: RemoteSettings.Report?, newest: SettingsRevision?)] {
        var all: [String: (report: RemoteSettings.Report?, newest: SettingsRevision?)] = [:]
        for row in try await query("SELECT id, settings_report FROM device WHERE settings_report IS NOT NULL", []) {
            guard let id = row.column("id")?.string, let text = row.column("settings_report")?.string else { continue }
            all[id] = (try? Heartbeat.decode(RemoteSettings.Report.self, from: Array(text.utf8)), nil)
        }
        let newest = try await query("""
            SELECT s.* FROM device_settings s JOIN (SELECT device, MAX(revision) AS r FROM device_settings GROUP BY device) m
            ON s.device = m.device AND s.revision = m.r
            """, []).compactMap(Self.settingsRevision)
        for r in newest { all[r.device, default: (nil, nil)].newest = r }
        return all
    }

    /// From a heartbeat: keeps the box's report, files what became of the revision it names,
    /// and returns the revision to offer (the newest not taken up and newer than any the box
    /// has seen) with what changed, in words.
    public func settingsHeartbeat(device: String, report: RemoteSettings.Report, now: Timestamp = .now()) async throws -> (RemoteSettings.Offer?, [String]) {
        let encoded = String(decoding: try Heartbeat.encode(report), as: UTF8.self)
        _ = try await query("UPDATE device SET settings_report = ? WHERE id = ?", [.text(encoded), .text(device)])
        var events: [String] = []
        if let l = report.last {
            let rows = try await query("""
                UPDATE device_settings SET result = ?, reason = ?, result_ms = ?
                WHERE device = ? AND revision = ? AND (result IS NULL OR result != ?) RETURNING revision
                """, [.text(l.result.rawValue), l.reason.map { .text($0) } ?? .null, .integer(Int(l.at.milliseconds)),
                      .text(device), .integer(Int(l.revision)), .text(l.result.rawValue)])
            if !rows.isEmpty {
                let e = "\(device): settings revision \(l.revision) \(l.result.rawValue)\(l.reason.map { " (\($0))" } ?? "")"
                events.append(e)
                try await audit(operator: nil, address: "box \(device)", action: "settings", detail: e, now: now)
            }
        }
        let offer = try await query("""
            SELECT * FROM device_settings WHERE device = ? AND revision > ? AND result IS NULL ORDER BY revision DESC LIMIT 1
            """, [.text(device), .integer(Int(report.seen ?? 0))]).compactMap(Self.settingsRevision).first
            .map { RemoteSettings.Offer(revision: $0.revision, toml: $0.toml) }
        return (offer, events)
    }

    static func settingsRevision(_ r: SQLiteRow) -> SettingsRevision? {
        guard let d = r.column("device")?.string, let n = r.column("revision")?.integer, let t = r.column("toml")?.string,
              let s = r.column("sent_ms")?.integer else { return nil }
        let result = r.column("result")?.string.flatMap(RemoteSettings.Result.init(rawValue:))
        return SettingsRevision(device: d, revision: Int64(n), toml: t, sent: Timestamp(milliseconds: Int64(s)), sentBy: r.column("sent_by")?.string,
                                result: result, reason: r.column("reason")?.string,
                                resultAt: r.column("result_ms")?.integer.map { Timestamp(milliseconds: Int64($0)) })
    }
}
