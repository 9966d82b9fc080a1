import Wire

/// Segments' activity summaries as a byte a minute (what the heartbeat carries and the desk
/// draws, `Heartbeat.ActivityMinutes`): 255 where no summary covers the minute, 0 where one
/// does and nothing moved, else the busiest moment's score, at most 254. Lighting is not
/// movement.
public enum ActivityTimeline {
    public struct Covered: Sendable {
        public var start: Timestamp
        public var end: Timestamp
        public var summary: ActivitySummary
        public init(start: Timestamp, end: Timestamp, summary: ActivitySummary) {
            self.start = start
            self.end = end
            self.summary = summary
        }
    }

    /// `count` minutes from `from` (a whole minute).
    public static func minutes(from: Timestamp, count: Int, segments: [Covered]) -> [UInt8] {
        let unknown = Heartbeat.ActivityMinutes.unknown
        guard count > 0 else { return [] }
        var levels = [UInt8](repeating: unknown, count: count)
        let base = from.milliseconds
        func minute(_ ms: Int64) -> Int? {
            guard ms >= base else { return nil }
            let m = (ms - base) / 60_000
            return m < count ? Int(m) : nil
        }
        for s in segments where s.end > s.start && s.end.milliseconds > base {
            let first = minute(max(s.start.milliseconds, base)) ?? count
            let last = minute(s.end.milliseconds - 1) ?? (count - 1)
            if first <= last { for m in first...last where levels[m] == unknown { levels[m] = 0 } }
            for e in s.summary.entries where e.score > 0 && !e.lighting {
                guard let m = minute(s.start.milliseconds + Int64(e.deciseconds) * 100) else { continue }
                levels[m] = max(levels[m] == unknown ? 0 : levels[m], min(254, e.score))
            }
        }
        return levels
    }
}
