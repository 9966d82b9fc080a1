import Wire

/// A daily stretch of local time, in minutes since midnight; one that ends before it starts
/// runs across midnight ("22:00-05:00"). Equal ends mean the whole day.
public struct DailyWindow: Sendable, Equatable, CustomStringConvertible {
    public var startMinute: Int
    public var endMinute: Int

    public init(startMinute: Int, endMinute: Int) {
        self.startMinute = startMinute
        self.endMinute = endMinute
    }

    /// Reads "HH:MM-HH:MM" (24-hour clock; "24:00" is midnight at the end of the day).
    public init?(parsing text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Substring(String($0).trimmingSpaces) }
        guard parts.count == 2, let a = Self.minute(parts[0]), let b = Self.minute(parts[1]) else { return nil }
        self.init(startMinute: a % 1440, endMinute: b % 1440)
    }

    static func minute(_ s: Substring) -> Int? {
        let hm = s.split(separator: ":", omittingEmptySubsequences: false)
        guard hm.count == 2, (1...2).contains(hm[0].count), hm[1].count == 2,
              let h = Int(hm[0]), let m = Int(hm[1]), (0...59).contains(m), (0...23).contains(h) || (h == 24 && m == 0) else { return nil }
        return h * 60 + m
    }

    public func contains(minute: Int) -> Bool {
        if startMinute == endMinute { return true }
        return startMinute < endMinute ? (minute >= startMinute && minute < endMinute) : (minute >= startMinute || minute < endMinute)
    }

    public var description: String {
        func hm(_ m: Int) -> String { (m / 60 < 10 ? "0" : "") + "\(m / 60):" + (m % 60 < 10 ? "0" : "") + "\(m % 60)" }
        return "\(hm(startMinute))-\(hm(endMinute))"
    }
}

/// Where movement counts for a motion flag: polygons on the picture (x and y from 0 to 1, left
/// to right and top to bottom) and grid cells, turned into cells of the activity grid. A cell
/// belongs to a polygon when its centre lies inside it; a polygon too small to hold a centre
/// has the cells its corners lie in.
public enum MotionZones {
    public struct Point: Sendable, Equatable {
        public var x: Double, y: Double
        public init(x: Double, y: Double) { self.x = x; self.y = y }
    }

    /// Bounds (README, "Limits"): zones and points a config may give.
    public static let maxPolygons = 16
    public static let maxPoints = 64

    /// The cells of `polygons` and `cells`; every cell when both are empty.
    public static func mask(polygons: [[Point]], cells: [Int]) -> CellMask {
        var mask = CellMask()
        if polygons.isEmpty && cells.isEmpty {
            for c in 0..<ActivityGrid.cells { mask[c] = true }
            return mask
        }
        for c in cells where (0..<ActivityGrid.cells).contains(c) { mask[c] = true }
        for polygon in polygons where polygon.count >= 3 {
            var any = false
            for row in 0..<ActivityGrid.rows {
                for column in 0..<ActivityGrid.columns {
                    let centre = Point(x: (Double(column) + 0.5) / Double(ActivityGrid.columns), y: (Double(row) + 0.5) / Double(ActivityGrid.rows))
                    if contains(polygon, centre) {
                        mask[row * ActivityGrid.columns + column] = true
                        any = true
                    }
                }
            }
            if !any { for p in polygon { mask[ActivityGrid.cell(x: p.x, y: p.y)] = true } }
        }
        return mask
    }

    /// Even-odd rule.
    static func contains(_ polygon: [Point], _ p: Point) -> Bool {
        var inside = false
        var j = polygon.count - 1
        for i in 0..<polygon.count {
            let a = polygon[i], b = polygon[j]
            if (a.y > p.y) != (b.y > p.y), p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
            j = i
        }
        return inside
    }
}

/// What makes a motion flag (`[motion]` in junction.toml, issue 14).
public struct MotionRules: Sendable, Equatable {
    /// The cells where movement counts.
    public var zone: CellMask
    /// When movement counts, in the box's local time; empty: always.
    public var schedule: [DailyWindow]
    /// Cells of the zone that must move in one keyframe for it to count.
    public var threshold: Int
    /// Movement shorter than this makes no flag.
    public var minSeconds: Double
    public var preRollSeconds: Double
    public var postRollSeconds: Double
    /// Footage motion flags may pin in any hour, rolls included: a busy junction in daylight
    /// cannot fill the ring with pins.
    public var maxPinSecondsPerHour: Double
    /// Keyframes with movement this close together are one event (a keyframe comes every 1–2 s).
    public var joinSeconds: Double = 4
    /// An event this long is flagged and a new one begins (so a flag never waits for a quiet
    /// moment that does not come).
    public var maxEventSeconds: Double = 300

    public init(zone: CellMask, schedule: [DailyWindow] = [], threshold: Int = 1, minSeconds: Double = 2, preRollSeconds: Double = 10,
                postRollSeconds: Double = 10, maxPinSecondsPerHour: Double = 600) {
        self.zone = zone
        self.schedule = schedule
        self.threshold = threshold
        self.minSeconds = minSeconds
        self.preRollSeconds = preRollSeconds
        self.postRollSeconds = postRollSeconds
        self.maxPinSecondsPerHour = maxPinSecondsPerHour
    }
}

/// Turns keyframes' movement into motion flags: movement in the zone, in the schedule, in at
/// least `threshold` cells, joined into events; an event of at least `minSeconds` becomes a flag
/// with its rolls, trimmed or refused by the hourly cap. Pure: the recorder feeds it each
/// segment's keyframes with their wall-clock time and local minute of the day, and makes the
/// flags it returns.
public struct MotionTrigger: Sendable {
    public struct Event: Sendable, Equatable {
        public var from: Timestamp
        public var to: Timestamp
        /// The most zone cells that moved in one keyframe.
        public var peakCells: Int
    }

    /// What became of an event.
    public enum Decision: Sendable, Equatable {
        /// Flag `from`–`to` (rolls not included; the flag adds them).
        case flag(from: Timestamp, to: Timestamp, peakCells: Int, trimmed: Bool)
        /// The hour's cap is used up: no flag.
        case capped(Event, usedSeconds: Double)
        /// Shorter than `minSeconds`: no flag.
        case tooShort(Event)
    }

    public let rules: MotionRules
    private var open: Event?
    /// Seconds pinned by each motion flag made in the last hour, with when it was made.
    private var pinned: [(at: Timestamp, seconds: Double)] = []

    public init(rules: MotionRules) {
        self.rules = rules
    }

    /// Counts flags made before this trigger started (after a restart) against the cap.
    public mutating func remember(flagMadeAt at: Timestamp, pinnedSeconds: Double) {
        pinned.append((at, pinnedSeconds))
    }

    /// Seconds motion flags pinned in the hour before `now`.
    public func usedSeconds(now: Timestamp) -> Double {
        pinned.filter { now.seconds(since: $0.at) < 3600 }.reduce(0) { $0 + $1.seconds }
    }

    /// One keyframe: when it was, its local minute of the day, the cells that moved and whether
    /// the whole picture changed (lighting: never movement). Returns the decisions on events it
    /// closed.
    public mutating func observe(at t: Timestamp, localMinute: Int, cells: CellMask, lighting: Bool = false) -> [Decision] {
        var decisions: [Decision] = []
        if let e = open, t.seconds(since: e.to) > rules.joinSeconds {
            decisions.append(close(e, now: t))
        }
        let inSchedule = rules.schedule.isEmpty || rules.schedule.contains { $0.contains(minute: localMinute) }
        let moving = lighting ? 0 : cells.intersection(rules.zone).count
        guard inSchedule, moving >= max(1, rules.threshold) else { return decisions }
        if var e = open {
            e.to = t
            e.peakCells = max(e.peakCells, moving)
            open = e
            if t.seconds(since: e.from) >= rules.maxEventSeconds { decisions.append(close(e, now: t)) }
        } else {
            open = Event(from: t, to: t, peakCells: moving)
        }
        return decisions
    }

    /// The recording has reached `t` (a segment's end): an event quiet since more than
    /// `joinSeconds` before it is closed.
    public mutating func advance(to t: Timestamp) -> [Decision] {
        guard let e = open, t.seconds(since: e.to) > rules.joinSeconds else { return [] }
        return [close(e, now: t)]
    }

    /// Ends the open event `e`.
    private mutating func close(_ event: Event, now: Timestamp) -> Decision {
        var e = event
        open = nil
        // A single keyframe shows movement at an instant: it stands for the interval it opens.
        if e.to == e.from { e.to = e.from + 1 }
        let length = e.to.seconds(since: e.from)
        guard length >= rules.minSeconds else { return .tooShort(e) }
        let used = usedSeconds(now: now)
        let rolls = rules.preRollSeconds + rules.postRollSeconds
        let room = rules.maxPinSecondsPerHour - used - rolls
        guard room >= max(rules.minSeconds, 1) else { return .capped(e, usedSeconds: used) }
        let kept = min(length, room)
        let to = kept < length ? e.from + kept : e.to
        pinned.removeAll { now.seconds(since: $0.at) >= 3600 }
        pinned.append((now, kept + rolls))
        return .flag(from: e.from, to: to, peakCells: e.peakCells, trimmed: kept < length)
    }
}
