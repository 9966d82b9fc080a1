#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Times as a technician types them on the CLI: RFC 3339 ("2026-11-29T14:02:00Z",
/// "2026-11-29T21:02:00+07:00"), the box's local time today ("14:02", "14:02:30"), a local date
/// and time ("2026-11-29 14:02"), "now", or relative to now ("-10m", "-2h", "-90s", "-1d").
public enum TimeExpression {
    /// How far a relative time may reach: 100 years.
    public static let maxRelativeSeconds: Double = 100 * 366 * 86400

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var text: String
        public var tooFar = false
        public init(text: String, tooFar: Bool = false) { self.text = text; self.tooFar = tooFar }
        public var description: String {
            if tooFar { return "'\(text)' is more than 100 years away: give a time within a century of now" }
            return "'\(text)' is not a time: write 14:02 (today, local time), 2026-11-29 14:02, -10m (ten minutes ago) or 2026-11-29T14:02:00Z"
        }
    }

    /// - Parameter utcOffsetSeconds: the local zone's offset; nil asks the system (TZ).
    public static func parse(_ text: String, now: Timestamp = .now(), utcOffsetSeconds: Int? = nil) throws(ParseError) -> Timestamp {
        let s = text.trimmingSpaces
        if s == "now" { return now }
        guard s.utf8.count <= 64 else { throw ParseError(text: String(text.prefix(64)) + "…") }
        if let t = Timestamp(rfc3339: s) { return t }
        if s.hasPrefix("-") || s.hasPrefix("+"), let unit = s.last {
            // Plain decimal digits only ("1e300", "inf", "nan" are not amounts), and at most
            // 100 years either way: a bound written down in README, "Limits".
            let amount = s.dropFirst().dropLast()
            guard !amount.isEmpty, amount.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  amount.filter({ $0 == "." }).count <= 1, let n = Double(amount), n.isFinite, n >= 0 else {
                throw ParseError(text: text)
            }
            let scale: Double
            switch unit {
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            default: throw ParseError(text: text)
            }
            guard n * scale <= maxRelativeSeconds else { throw ParseError(text: text, tooFar: true) }
            return now + (s.hasPrefix("-") ? -n * scale : n * scale)
        }
        let offset = Int64(utcOffsetSeconds ?? localOffset(at: now)) * 1000
        // "YYYY-MM-DD HH:MM[:SS]" local.
        if s.count >= 16, s.dropFirst(10).first == " " || s.dropFirst(10).first == "T",
           let day = Timestamp(rfc3339: String(s.prefix(10)) + "T00:00:00Z"),
           let clock = clockSeconds(String(s.dropFirst(11))) {
            return Timestamp(milliseconds: day.milliseconds + Int64(clock) * 1000 - offset)
        }
        // "HH:MM[:SS]" local, today.
        if let clock = clockSeconds(s) {
            let localNow = now.milliseconds + offset
            let midnight = localNow - ((localNow % 86_400_000) + 86_400_000) % 86_400_000
            return Timestamp(milliseconds: midnight + Int64(clock) * 1000 - offset)
        }
        throw ParseError(text: text)
    }

    static func clockSeconds(_ s: String) -> Int? {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        // ASCII digits only: "½½" and other scripts' digits pass `isNumber` but not `Int()`
        // (issue 22: `Int(...)!` trapped every CLI that takes a time).
        guard parts.count == 2 || parts.count == 3, parts.allSatisfy({ $0.utf8.count == 2 && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
              let h = Int(parts[0]), let m = Int(parts[1]), h < 24, m < 60 else { return nil }
        guard let sec = parts.count == 3 ? Int(parts[2]) : 0, sec < 60 else { return nil }
        return h * 3600 + m * 60 + sec
    }

    private static let zone = Mutex<(@Sendable (Timestamp) -> Int)?>(nil)

    /// Reads and writes local times in this zone from now on (the box's `[device] time_zone`),
    /// instead of the system's.
    public static func useZone(_ offset: @escaping @Sendable (Timestamp) -> Int) {
        zone.withLock { $0 = offset }
    }

    /// The local zone's UTC offset at `t`: the zone `useZone` set, else TZ / /etc/localtime.
    public static func localOffset(at t: Timestamp) -> Int {
        if let offset = zone.withLock({ $0 }) { return offset(t) }
        var secs = time_t(t.milliseconds / 1000)
        var tmv = tm()
        localtime_r(&secs, &tmv)
        return Int(tmv.tm_gmtoff)
    }
}

extension StringProtocol {
    /// Without white space (newlines too) at either end.
    public var trimmingSpaces: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
