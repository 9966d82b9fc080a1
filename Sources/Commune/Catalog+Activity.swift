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
    @discardableResult
    public func addActivity(device: String, _ a: Heartbeat.ActivityMinutes, now: Timestamp = .now()) async throws -> Int? {
        guard let levels = a.decoded else { return nil }
        let known = levels.enumerated().filter { $0.element != Heartbeat.ActivityMinutes.unknown }
        let base = a.from.milliseconds
        try await transaction { db in
            for (i, level) in known {
                _ = try await db.query("INSERT OR REPLACE INTO activity_minute (device, minute_ms, level) VALUES (?, ?, ?)",
                                       [.text(device), .integer(Int(base + Int64(i) * 60_000)), .integer(Int(level))])
            }
            _ = try await db.query("DELETE FROM activity_minute WHERE device = ? AND minute_ms < ?",
                                   [.text(device), .integer(Int(now.milliseconds - Self.activityKeepMinutes * 60_000))])
        }
        return known.count
    }

    /// The minute the next heartbeat should start from: the newest kept (it may have been
    /// partial), or nil for a box not heard from (it then sends its last day).
    public func activityFrom(device: String) async throws -> Timestamp? {
        try await query("SELECT MAX(minute_ms) AS m FROM activity_minute WHERE device = ?", [.text(device)])
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
