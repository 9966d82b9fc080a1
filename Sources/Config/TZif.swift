import Wire

/// A time zone as the system's tz database writes it: a TZif file (RFC 8536, versions 1–4) from
/// `/usr/share/zoneinfo` (Debian's `tzdata`, which the image carries). Read here rather than
/// through Foundation's `TimeZone`, whose named zones need ICU's data (~39 MB in a static box
/// binary, issue 25); a zone file is a few hundred bytes to a few KiB.
///
/// What is kept is only what the box needs, the offset from UTC at an instant: the transitions
/// (64-bit times from a version 2+ file, 32-bit from a version 1 file), their local time types,
/// and the footer's POSIX TZ rule for instants after the last transition.
///
/// Bounds (README, "Limits"): at most `maxBytes`; every count is checked against the bytes that
/// follow before anything is read; transitions strictly ascending, every type index in range,
/// offsets within ±26 h, designations inside their table; files with leap-second records
/// (`right/` zones, whose times are not POSIX times) are refused. Any violation is a
/// `TZifError` naming what is wrong, never a trap.
public struct TZif: Sendable, Equatable {
    public static let maxBytes = 64 << 10
    /// Offsets beyond ±26 h are not local times (RFC 8536 §3.2 allows −25:59:59…+25:59:59).
    public static let maxOffset: Int32 = 93_599

    public struct LocalType: Sendable, Equatable {
        /// Seconds east of UTC.
        public var utOffset: Int32
        public var isDST: Bool
        public var abbreviation: String
    }

    /// UTC seconds since 1970, strictly ascending.
    public let transitions: [Int64]
    /// For each transition, the index into `types` in force from it.
    public let typeIndices: [UInt8]
    public let types: [LocalType]
    /// The rule after the last transition (nil when the file has none).
    public let footer: PosixTZ?

    public init(transitions: [Int64], typeIndices: [UInt8], types: [LocalType], footer: PosixTZ?) {
        self.transitions = transitions
        self.typeIndices = typeIndices
        self.types = types
        self.footer = footer
    }

    /// UTC, for a box whose image lacks the zone files: the one zone that needs none.
    public static let utc = TZif(transitions: [], typeIndices: [], types: [LocalType(utOffset: 0, isDST: false, abbreviation: "UTC")],
                                 footer: PosixTZ(standard: 0, daylight: nil))

    /// Seconds east of UTC at `seconds` since 1970 (UTC).
    public func offset(atUTC seconds: Int64) -> Int {
        guard let last = transitions.last else {
            return footer.map { $0.offset(atUTC: seconds) } ?? Int(types[0].utOffset)
        }
        if seconds < transitions[0] { return Int(types[0].utOffset) }
        if seconds >= last, let footer { return footer.offset(atUTC: seconds) }
        // The last transition at or before `seconds`.
        var lo = 0, hi = transitions.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if transitions[mid] <= seconds { lo = mid } else { hi = mid - 1 }
        }
        return Int(types[Int(typeIndices[lo])].utOffset)
    }

    /// Parses a TZif file's bytes.
    public static func parse(_ bytes: [UInt8]) throws(TZifError) -> TZif {
        guard bytes.count <= maxBytes else { throw TZifError("is over \(maxBytes) bytes, far more than any zone needs") }
        var r = Reader(bytes: bytes)
        let v1 = try r.header()
        guard v1.version >= 2 else { return try r.block(v1, timeSize: 4, footer: nil) }
        // A version 2+ file repeats everything with 64-bit times after the version 1 block.
        try r.skip(v1.blockSize(timeSize: 4))
        let v2 = try r.header()
        let start = r.at
        try r.skip(v2.blockSize(timeSize: 8))
        guard r.at < bytes.count, bytes[r.at] == 0x0A else { throw TZifError("has no footer after its data (RFC 8536 §3.3)") }
        var end = r.at + 1
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else { throw TZifError("has a footer that does not end with a newline") }
        let text = String(decoding: bytes[(r.at + 1)..<end], as: UTF8.self)
        let footer: PosixTZ?
        do throws(TZifError) { footer = text.isEmpty ? nil : try PosixTZ.parse(text) } catch {
            throw TZifError("has a footer \"\(String(text.prefix(40)))\" that is not a TZ rule (\(error.message))")
        }
        r.at = start
        return try r.block(v2, timeSize: 8, footer: footer)
    }

    struct Header {
        var version: Int
        var isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt: Int

        func blockSize(timeSize: Int) -> Int {
            timecnt * timeSize + timecnt + typecnt * 6 + charcnt + leapcnt * (timeSize + 4) + isstdcnt + isutcnt
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var at = 0

        mutating func skip(_ n: Int) throws(TZifError) {
            guard n <= bytes.count - at else { throw TZifError("is cut short: its counts need \(n) bytes, \(bytes.count - at) follow") }
            at += n
        }

        mutating func u32() throws(TZifError) -> UInt32 {
            guard bytes.count - at >= 4 else { throw TZifError("is cut short") }
            defer { at += 4 }
            return UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
        }

        mutating func i64() throws(TZifError) -> Int64 {
            let high = try u32(), low = try u32()
            return Int64(bitPattern: UInt64(high) << 32 | UInt64(low))
        }

        mutating func header() throws(TZifError) -> Header {
            guard bytes.count - at >= 44, bytes[at..<(at + 4)].elementsEqual([0x54, 0x5A, 0x69, 0x66]) else {
                throw TZifError("is not a TZif file (no \"TZif\" header): is it a zone of /usr/share/zoneinfo?")
            }
            let v = bytes[at + 4]
            let version: Int
            switch v {
            case 0: version = 1
            case 0x32...0x39: version = Int(v - 0x30)
            default: throw TZifError("has an unknown version byte 0x\(String(v, radix: 16))")
            }
            at += 20
            // Each count is at most what `maxBytes` could hold, so the sizes below never overflow.
            var counts: [Int] = []
            for _ in 0..<6 {
                let c = try u32()
                guard c <= UInt32(TZif.maxBytes) else { throw TZifError("has a count of \(c), more than the file could hold") }
                counts.append(Int(c))
            }
            let h = Header(version: version, isutcnt: counts[0], isstdcnt: counts[1], leapcnt: counts[2],
                           timecnt: counts[3], typecnt: counts[4], charcnt: counts[5])
            guard h.typecnt >= 1, h.typecnt <= 256 else { throw TZifError("has \(h.typecnt) local time types (1–256 allowed)") }
            guard h.charcnt >= 1 else { throw TZifError("has no time zone designations") }
            guard h.isutcnt == 0 || h.isutcnt == h.typecnt, h.isstdcnt == 0 || h.isstdcnt == h.typecnt else {
                throw TZifError("has standard/UT indicator counts that match no type count")
            }
            guard h.leapcnt == 0 else {
                throw TZifError("carries leap seconds (a right/ zone, whose times are not the system's): use the zone without right/")
            }
            return h
        }

        mutating func block(_ h: Header, timeSize: Int, footer: PosixTZ?) throws(TZifError) -> TZif {
            guard h.blockSize(timeSize: timeSize) <= bytes.count - at else {
                throw TZifError("is cut short: its counts need \(h.blockSize(timeSize: timeSize)) bytes, \(bytes.count - at) follow")
            }
            var transitions: [Int64] = []
            transitions.reserveCapacity(h.timecnt)
            for _ in 0..<h.timecnt {
                let t = timeSize == 8 ? try i64() : Int64(Int32(bitPattern: try u32()))
                if let previous = transitions.last, t <= previous {
                    throw TZifError("has transitions out of order (\(t) after \(previous))")
                }
                transitions.append(t)
            }
            let indices = Array(bytes[at..<(at + h.timecnt)])
            at += h.timecnt
            if let bad = indices.first(where: { Int($0) >= h.typecnt }) {
                throw TZifError("names local time type \(bad) of \(h.typecnt)")
            }
            var raw: [(Int32, UInt8, Int)] = []
            for _ in 0..<h.typecnt {
                let offset = Int32(bitPattern: try u32())
                let dst = bytes[at], index = Int(bytes[at + 1])
                at += 2
                guard offset != Int32.min, abs(offset) <= TZif.maxOffset else { throw TZifError("has an offset of \(offset) s, beyond ±26 h") }
                guard dst <= 1 else { throw TZifError("has a daylight flag of \(dst) (0 or 1 allowed)") }
                guard index < h.charcnt else { throw TZifError("has a designation at \(index), past its \(h.charcnt) bytes") }
                raw.append((offset, dst, index))
            }
            let chars = bytes[at..<(at + h.charcnt)]
            let types = raw.map { offset, dst, index in
                let from = chars.startIndex + index
                let to = chars[from...].firstIndex(of: 0) ?? chars.endIndex
                return LocalType(utOffset: offset, isDST: dst == 1, abbreviation: String(decoding: chars[from..<to], as: UTF8.self))
            }
            return TZif(transitions: transitions, typeIndices: indices, types: types, footer: footer)
        }
    }
}

public struct TZifError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A POSIX TZ rule as TZif footers write it (RFC 8536 §3.3, with its version 3 extensions):
/// `<+07>-7`, `EST5EDT,M3.2.0,M11.1.0`, `<-03>3<-02>,M3.5.0/-2,M10.5.0/-1`.
public struct PosixTZ: Sendable, Equatable {
    /// Seconds east of UTC in standard time.
    public var standard: Int32
    public var daylight: Daylight?

    public struct Daylight: Sendable, Equatable {
        /// Seconds east of UTC in daylight time.
        public var offset: Int32
        /// When daylight time starts (given in local standard time) and ends (in local daylight time).
        public var start: Rule
        public var end: Rule
    }

    public struct Rule: Sendable, Equatable {
        public enum Day: Sendable, Equatable {
            /// `Jn`: day 1–365, February 29 never counted.
            case julian(Int)
            /// `n`: day 0–365, February 29 counted in leap years.
            case zeroBased(Int)
            /// `Mm.w.d`: weekday d (0 = Sunday) of week w (5 = the last) of month m.
            case month(Int, week: Int, weekday: Int)
        }
        public var day: Day
        /// Seconds after local midnight (−167 h … +167 h; 02:00 when not given).
        public var time: Int
    }

    public init(standard: Int32, daylight: Daylight?) {
        self.standard = standard
        self.daylight = daylight
    }

    public static func parse(_ text: String) throws(TZifError) -> PosixTZ {
        var p = Parser(s: Array(text.utf8))
        try p.name()
        let standard = try p.offset()
        guard !p.atEnd else { return PosixTZ(standard: standard, daylight: nil) }
        try p.name()
        var dst = standard + 3600
        if !p.atEnd, p.peek != UInt8(ascii: ",") { dst = try p.offset() }
        guard !p.atEnd else { throw TZifError("daylight time without a rule") }
        try p.expect(",")
        let start = try p.rule()
        try p.expect(",")
        let end = try p.rule()
        guard p.atEnd else { throw TZifError("text after the rule") }
        return PosixTZ(standard: standard, daylight: Daylight(offset: dst, start: start, end: end))
    }

    struct Parser {
        let s: [UInt8]
        var i = 0
        var atEnd: Bool { i >= s.count }
        var peek: UInt8 { s[i] }

        mutating func expect(_ c: Character) throws(TZifError) {
            guard !atEnd, peek == c.asciiValue! else { throw TZifError("expected \"\(c)\" at \(i + 1)") }
            i += 1
        }

        mutating func name() throws(TZifError) {
            let from = i
            if !atEnd, peek == UInt8(ascii: "<") {
                i += 1
                while !atEnd, peek != UInt8(ascii: ">") {
                    guard isAlnum(peek) || peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") else { throw TZifError("a bad character in a <name>") }
                    i += 1
                }
                try expect(">")
                guard i - from - 2 >= 3 else { throw TZifError("a name shorter than 3 characters") }
            } else {
                while !atEnd, (peek | 0x20) >= UInt8(ascii: "a"), (peek | 0x20) <= UInt8(ascii: "z") { i += 1 }
                guard i - from >= 3 else { throw TZifError("a name shorter than 3 letters at \(from + 1)") }
            }
        }

        /// A number of 1–3 digits, at most `max`.
        mutating func number(max: Int) throws(TZifError) -> Int {
            var n = 0, digits = 0
            while !atEnd, peek >= 0x30, peek <= 0x39, digits < 3 {
                n = n * 10 + Int(peek - 0x30)
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw TZifError("expected a number at \(i + 1)") }
            guard n <= max else { throw TZifError("\(n) is out of range (at most \(max)) at \(i)") }
            return n
        }

        /// `[+-]hh[:mm[:ss]]` as seconds.
        mutating func hms(maxHours: Int) throws(TZifError) -> Int {
            var sign = 1
            if !atEnd, peek == UInt8(ascii: "-") || peek == UInt8(ascii: "+") {
                if peek == UInt8(ascii: "-") { sign = -1 }
                i += 1
            }
            var seconds = try number(max: maxHours) * 3600
            if !atEnd, peek == UInt8(ascii: ":") {
                i += 1
                seconds += try number(max: 59) * 60
                if !atEnd, peek == UInt8(ascii: ":") {
                    i += 1
                    seconds += try number(max: 59)
                }
            }
            return sign * seconds
        }

        /// A POSIX offset is hours west of UTC; the result is seconds east.
        mutating func offset() throws(TZifError) -> Int32 {
            Int32(-(try hms(maxHours: 24)))
        }

        mutating func rule() throws(TZifError) -> Rule {
            let day: Rule.Day
            guard !atEnd else { throw TZifError("a rule cut short") }
            if peek == UInt8(ascii: "J") {
                i += 1
                let n = try number(max: 365)
                guard n >= 1 else { throw TZifError("J0 is not a day (J1–J365)") }
                day = .julian(n)
            } else if peek == UInt8(ascii: "M") {
                i += 1
                let m = try number(max: 12)
                try expect(".")
                let w = try number(max: 5)
                try expect(".")
                let d = try number(max: 6)
                guard m >= 1, w >= 1 else { throw TZifError("M\(m).\(w).\(d) is not a day (M1–12, week 1–5)") }
                day = .month(m, week: w, weekday: d)
            } else {
                day = .zeroBased(try number(max: 365))
            }
            var time = 7200
            if !atEnd, peek == UInt8(ascii: "/") {
                i += 1
                time = try hms(maxHours: 167)
            }
            return Rule(day: day, time: time)
        }

        func isAlnum(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z"))
        }
    }

    /// Seconds east of UTC at `seconds` since 1970 (UTC).
    public func offset(atUTC seconds: Int64) -> Int {
        guard let daylight else { return Int(standard) }
        // Beyond ±2^40 s (±34 000 years) every instant is one of those years: the date arithmetic
        // below never overflows.
        let t = min(max(seconds, -(1 << 40)), 1 << 40)
        let year = Int64(Timestamp.civilFromDays(Int((t + Int64(standard)).floorDiv(86_400))).0)
        let start = daylight.start.utc(year: year, offset: standard)
        let end = daylight.end.utc(year: year, offset: daylight.offset)
        let inDaylight = start < end ? (start <= t && t < end) : !(end <= t && t < start)
        return Int(inDaylight ? daylight.offset : standard)
    }
}

extension PosixTZ.Rule {
    /// The instant (UTC seconds) this rule names in `year`, its time read at `offset` east of UTC.
    func utc(year: Int64, offset: Int32) -> Int64 {
        let jan1 = Int64(Timestamp.daysFromCivil(Int(year), 1, 1))
        let leap = Timestamp.daysIn(month: 2, year: Int(year)) == 29
        let dayOfYear: Int64
        switch day {
        case .julian(let n): dayOfYear = Int64(n - 1) + (leap && n >= 60 ? 1 : 0)
        case .zeroBased(let n): dayOfYear = Int64(n)
        case .month(let m, let week, let weekday):
            let first = Int64(Timestamp.daysFromCivil(Int(year), m, 1))
            // 1970-01-01 was a Thursday (4).
            let firstWeekday = (first + 4).floorMod(7)
            var d = 1 + (Int64(weekday) - firstWeekday + 7) % 7 + Int64(week - 1) * 7
            let length = Int64(Timestamp.daysIn(month: m, year: Int(year)))
            while d > length { d -= 7 }
            dayOfYear = first - jan1 + d - 1
        }
        return (jan1 + dayOfYear) * 86_400 + Int64(time) - Int64(offset)
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 { self >= 0 ? self / d : -((-self - 1) / d) - 1 }
    func floorMod(_ d: Int64) -> Int64 { self - floorDiv(d) * d }
}
