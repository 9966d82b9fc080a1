#if canImport(Glibc)
import Glibc
#endif

/// A UTC wall-clock instant in milliseconds since 1970: the unit of the index and of every time
/// box and server exchange.
///
/// Formats and parses RFC 3339 itself (a few lines of civil-calendar arithmetic) so the box
/// needs no ICU: see README, design notes.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// The system's wall clock now.
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    /// The instants Junction represents: years 0001 to 9999 (what RFC 3339 can write). Every
    /// parser refuses times outside it, and arithmetic saturates at its ends, so no input can
    /// overflow the calendar code (a bound written down in README, "Limits").
    public static let earliest = Timestamp(milliseconds: -62_135_596_800_000)  // 0001-01-01T00:00:00Z
    public static let latest = Timestamp(milliseconds: 253_402_300_799_999)     // 9999-12-31T23:59:59.999Z
    public static let validRange = earliest...latest

    /// Whether `seconds` (since 1970) lies in `validRange`; false for NaN and infinities.
    public static func isRepresentable(seconds: Double) -> Bool {
        seconds.isFinite && seconds * 1000 >= Double(earliest.milliseconds) && seconds * 1000 <= Double(latest.milliseconds)
    }

    /// The instant clamped into `validRange`.
    public var clamped: Timestamp { Timestamp(milliseconds: min(max(milliseconds, Self.earliest.milliseconds), Self.latest.milliseconds)) }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }
    /// Saturating: a result beyond `validRange` (or a NaN/infinite offset) ends at its edge.
    public static func + (a: Timestamp, seconds: Double) -> Timestamp {
        let base = a.clamped.milliseconds
        guard seconds.isFinite else { return seconds > 0 ? latest : earliest }
        let ms = Double(base) + (seconds * 1000).rounded()
        if ms >= Double(latest.milliseconds) { return latest }
        if ms <= Double(earliest.milliseconds) { return earliest }
        return Timestamp(milliseconds: Int64(ms))
    }
    public static func - (a: Timestamp, seconds: Double) -> Timestamp { a + -seconds }
    /// Seconds from `other` to this instant. In Double arithmetic, so it never traps: two
    /// instants at Int64's ends are ~1.8e16 s apart, not an overflow.
    public func seconds(since other: Timestamp) -> Double { (Double(milliseconds) - Double(other.milliseconds)) / 1000 }

    /// Milliseconds from `other` to this instant, saturating at Int64's ends.
    public func milliseconds(since other: Timestamp) -> Int64 { milliseconds.subtracting(saturating: other.milliseconds) }

    /// This instant moved by `ms`, saturating at the ends of `validRange`.
    public func adding(milliseconds ms: Int64) -> Timestamp {
        Timestamp(milliseconds: clamped.milliseconds.adding(saturating: ms)).clamped
    }

    /// An instant read from outside as milliseconds (a chain record, a form, a bundle), or nil
    /// when it lies outside `validRange`: where it is decoded, never later.
    public init?(validMilliseconds ms: Int64) {
        guard Self.validRange.contains(Timestamp(milliseconds: ms)) else { return nil }
        milliseconds = ms
    }

    public var description: String { rfc3339 }

    /// "2026-11-29T01:47:46.123Z" (milliseconds only when not zero).
    public var rfc3339: String {
        let c = civil
        var s = "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2))"
        if c.millisecond != 0 { s += "." + pad(c.millisecond, 3) }
        return s + "Z"
    }

    /// Whole seconds since 1970 now.
    public static func nowSeconds() -> Int64 { now().milliseconds / 1000 }

    /// "14" (UTC hour, two digits).
    public var hour: String { pad(civil.hour, 2) }

    /// "2026-11-29"
    public var day: String { let c = civil; return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))" }

    /// "20261129T014746.123Z": sortable, safe in file names on FAT.
    public var compact: String {
        let c = civil
        return "\(pad(c.year, 4))\(pad(c.month, 2))\(pad(c.day, 2))T\(pad(c.hour, 2))\(pad(c.minute, 2))\(pad(c.second, 2)).\(pad(c.millisecond, 3))Z"
    }

    public struct Civil: Sendable, Equatable {
        public var year, month, day, hour, minute, second, millisecond: Int
    }

    public var civil: Civil {
        let ms = clamped.milliseconds
        let days = Int(floorDiv(ms, 86_400_000))
        let rem = Int(ms - Int64(days) * 86_400_000)
        let (y, m, d) = Self.civilFromDays(days)
        return Civil(year: y, month: m, day: d, hour: rem / 3_600_000, minute: rem / 60_000 % 60,
                     second: rem / 1000 % 60, millisecond: rem % 1000)
    }

    public init(civil c: Civil) {
        let days = Self.daysFromCivil(c.year, c.month, c.day)
        milliseconds = Int64(days) * 86_400_000 + Int64(c.hour) * 3_600_000 + Int64(c.minute) * 60_000
            + Int64(c.second) * 1000 + Int64(c.millisecond)
    }

    /// Parses RFC 3339: "2026-11-29T14:02:00Z", "2026-11-29T21:02:00+07:00", "2026-11-29 14:02:00.5Z".
    public init?(rfc3339 text: String) {
        let chars = Array(text.utf8)
        var i = 0
        func number(_ n: Int) -> Int? {
            guard i + n <= chars.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = chars[i + k]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < chars.count, chars[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = number(4), expect(45), let mo = number(2), expect(45), let d = number(2) else { return nil }
        guard i < chars.count, chars[i] == 84 || chars[i] == 116 || chars[i] == 32 else { return nil }
        i += 1
        guard let h = number(2), expect(58), let mi = number(2), expect(58), let s = number(2) else { return nil }
        var ms = 0
        if i < chars.count, chars[i] == 46 {
            i += 1
            var digits = 0
            while i < chars.count, chars[i] >= 48, chars[i] <= 57 {
                if digits < 3 { ms = ms * 10 + Int(chars[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            // (A `for … in digits..<3 where digits < 3` built its range first and trapped on four
            // or more digits: found by the countersign fuzz target.)
            if digits < 3 { for _ in digits..<3 { ms *= 10 } }
        }
        var offsetMinutes = 0
        guard i < chars.count else { return nil }
        if chars[i] == 90 || chars[i] == 122 {
            i += 1
        } else if chars[i] == 43 || chars[i] == 45 {
            let sign = chars[i] == 45 ? -1 : 1
            i += 1
            guard let oh = number(2), expect(58), let om = number(2) else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
        } else {
            return nil
        }
        guard i == chars.count, y >= 1, (1...12).contains(mo), (1...Self.daysIn(month: mo, year: y)).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        self.init(civil: Civil(year: y, month: mo, day: d, hour: h, minute: mi, second: min(s, 59), millisecond: ms))
        milliseconds -= Int64(offsetMinutes) * 60_000
        // "0001-01-01T00:00:00+01:00" is a valid text for an instant before year 1.
        guard Self.validRange.contains(self) else { return nil }
    }

    /// 28–31: the days of `month` (1–12) in `year` (proleptic Gregorian).
    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Howard Hinnant's civil-from-days / days-from-civil (days since 1970-01-01, proleptic
    // Gregorian; also the time zone reader's).
    public static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    public static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rfc3339)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let t = Timestamp(rfc3339: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time in years 0001–9999: \(s.prefix(64))")
        }
        self = t
    }
}

private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// HTTP dates (RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"), as in `Upload-Expires`.
public enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday

    /// Seconds since 1970, or nil when the text is not an IMF-fixdate with a real date in years
    /// 1970–9999: fixed widths, digits only, so no header can overflow the calendar arithmetic.
    public static func parse(_ text: String) -> Double? {
        guard text.utf8.count == 29 else { return nil }
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        func digits(_ s: Substring, _ n: Int) -> Int? {
            guard s.utf8.count == n, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int(s)
        }
        guard parts.count == 6, parts[5] == "GMT", parts[0].hasSuffix(","),
              weekdays.contains(String(parts[0].dropLast())),
              let day = digits(parts[1], 2), let year = digits(parts[3], 4), year >= 1970,
              let month = months.firstIndex(of: String(parts[2])) else { return nil }
        let hms = parts[4].split(separator: ":", omittingEmptySubsequences: false)
        guard hms.count == 3, let h = digits(hms[0], 2), let m = digits(hms[1], 2), let sec = digits(hms[2], 2),
              h < 24, m < 60, sec < 61, (1...Timestamp.daysIn(month: month + 1, year: year)).contains(day) else { return nil }
        let t = Timestamp(civil: .init(year: year, month: month + 1, day: day, hour: h, minute: m, second: min(sec, 59), millisecond: 0))
        return Double(t.milliseconds) / 1000
    }

    public static func format(_ t: Timestamp) -> String {
        let c = t.civil
        let days = Int((t.milliseconds - ((t.milliseconds % 86_400_000) + 86_400_000) % 86_400_000) / 86_400_000)
        let wd = weekdays[((days % 7) + 7) % 7]
        return "\(wd), \(pad(c.day, 2)) \(months[c.month - 1]) \(c.year) \(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2)) GMT"
    }
}
