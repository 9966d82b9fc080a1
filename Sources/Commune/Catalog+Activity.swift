import SQLiteNIO
import Wire

/// Each box's activity a byte a minute, as its heartbeats bring it (issue 14): the desk shows
/// *when* something moved before an officer asks for any video.
extension Catalog {
    /// Minutes kept per device: 31 days (the longest a request may span).
    public static let activityKeepMinutes: Int64 = 31 * 1440

    /// Keeps the known minutes of `a` (a newer report of a minute replaces the older: the box's
    /// last minute may have been partial); drops minutes older than `activityKeepMinutes`.
    /// - Returns: minutes kept, or nil when `a` breaks its rules (nothing is kept then).
    /// Minutes are kept from `activityKeepMinutes` ago up to the commune's present minute: a
    /// minute the commune's clock has not reached yet is not kept (issue 22: one heartbeat dated
    /// 2099 made the commune ask for activity from 2099 on, and the box's activity went blank).
    @discardableResult
    public func addActivity(device: String, _ a: Heartbeat.ActivityMinutes, now: Timestamp = .now()) async throws -> Int? {
        guard let levels = a.decoded else { return nil }
        let base = a.from.milliseconds
        let oldest = now.milliseconds - Self.activityKeepMinutes * 60_000, newest = now.milliseconds / 60_000 * 60_000
        let known = levels.enumerated().map { (minute: base + Int64($0.offset) * 60_000, level: $0.element) }
            .filter { $0.level != Heartbeat.ActivityMinutes.unknown && $0.minute >= oldest && $0.minute <= newest }
        try await transaction { db in
            for m in known {
                _ = try await db.query("INSERT OR REPLACE INTO activity_minute (device, minute_ms, level) VALUES (?, ?, ?)",
                                       [.text(device), .integer(Int(m.minute)), .integer(Int(m.level))])
            }
            // Past the window either way: what an older commune kept before this bound, too.
            _ = try await db.query("DELETE FROM activity_minute WHERE device = ? AND (minute_ms < ? OR minute_ms > ?)",
                                   [.text(device), .integer(Int(oldest)), .integer(Int(newest))])
        }
        return known.count
    }

    /// The minute the next heartbeat should start from: the newest kept (it may have been
    /// partial, and is never past the commune's present minute), or nil for a box not heard from
    /// (it then sends its last day).
    public func activityFrom(device: String, now: Timestamp = .now()) async throws -> Timestamp? {
        try await query("SELECT MAX(minute_ms) AS m FROM activity_minute WHERE device = ? AND minute_ms <= ?",
                        [.text(device), .integer(Int(now.milliseconds))])
            .first?.column("m")?.integer.map { Timestamp(milliseconds: Int64($0)) }
    }

    /// The kept minutes of `from`–`to`, oldest first.
    public func activity(device: String, from: Timestamp, to: Timestamp) async throws -> [(minute: Timestamp, level: UInt8)] {
        try await query("SELECT minute_ms, level FROM activity_minute WHERE device = ? AND minute_ms >= ? AND minute_ms < ? ORDER BY minute_ms",
                        [.text(device), .integer(Int(from.milliseconds / 60_000 * 60_000)), .integer(Int(to.milliseconds))]).compactMap {
            guard let m = $0.column("minute_ms")?.integer, let l = $0.column("level")?.integer else { return nil }
            return (Timestamp(milliseconds: Int64(m)), UInt8(clamping: l))
        }
    }
}
