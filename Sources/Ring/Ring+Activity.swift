import Activity
import NIOCore
import SQLiteNIO
import Wire

/// The activity index on the box (issue 14): each segment's `ActivitySummary`, kept in its row
/// (and sealed in its chain record, so `reindex` brings it back from the files).
extension Ring {
    public struct SegmentActivity: Sendable, Equatable {
        public var path: String
        public var camera: String
        public var start: Timestamp
        public var end: Timestamp
        public var summary: ActivitySummary

        /// When a keyframe showed movement, and how much (0–255).
        public var moments: [(at: Timestamp, score: UInt8)] {
            summary.entries.filter { $0.score > 0 && !$0.lighting }.map { (start + Double($0.deciseconds) / 10, $0.score) }
        }

        public static func == (a: SegmentActivity, b: SegmentActivity) -> Bool {
            a.path == b.path && a.camera == b.camera && a.start == b.start && a.end == b.end && a.summary == b.summary
        }
    }

    /// The activity of the live segments overlapping `from`–`to` that have a summary, oldest
    /// first. A summary the index holds damaged is skipped (and named by `junction check`).
    public func activity(camera: String? = nil, from: Timestamp? = nil, to: Timestamp? = nil) async throws(RingError) -> [SegmentActivity] {
        var sql = "SELECT path, camera, start_ms, end_ms, activity FROM segment WHERE state = 'live' AND activity IS NOT NULL"
        var binds: [SQLiteData] = []
        if let camera { sql += " AND camera = ?"; binds.append(.text(camera)) }
        if let from { sql += " AND end_ms > ?"; binds.append(.integer(Int(from.milliseconds))) }
        if let to { sql += " AND start_ms < ?"; binds.append(.integer(Int(to.milliseconds))) }
        sql += " ORDER BY start_ms"
        return try await index.run(sql, binds).compactMap { row in
            guard case .blob(let buffer)? = row.column("activity"),
                  let summary = try? ActivitySummary(encoded: Array(buffer.readableBytesView)) else { return nil }
            return SegmentActivity(path: row.column("path")?.string ?? "", camera: row.column("camera")?.string ?? "",
                                   start: Timestamp(milliseconds: Int64(row.column("start_ms")?.integer ?? 0)),
                                   end: Timestamp(milliseconds: Int64(row.column("end_ms")?.integer ?? 0)), summary: summary)
        }
    }
}
