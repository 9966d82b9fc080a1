import Foundation

/// The box's local time (`[device] time_zone`): the minute of the day a motion schedule is read
/// at. Foundation's time zones carry their own tz data, so a box without tzdata still knows them.
public struct LocalTime: Sendable {
    let zone: TimeZone

    /// Nil when `identifier` names no time zone, or is not written as zone names are (issue 22:
    /// "Asia/Ho_Chi_Minh\u{0}" was taken, cut at the NUL by the system, and shown as UTC).
    public init?(identifier: String) {
        guard Self.isZoneName(identifier), let zone = TimeZone(identifier: identifier) else { return nil }
        self.zone = zone
    }

    /// What a zone name is made of: 1–64 of `A–Z a–z 0–9 / _ + -`, no `..`, not starting with
    /// `/` or `-` ("Asia/Ho_Chi_Minh", "Etc/GMT+7", "UTC").
    public static func isZoneName(_ s: String) -> Bool {
        (1...64).contains(s.utf8.count) && !s.hasPrefix("/") && !s.hasPrefix("-") && !s.contains("..")
            && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2F || $0 == 0x5F || $0 == 0x2B || $0 == 0x2D }
    }

    /// The zone's offset from UTC at `milliseconds` since 1970, in seconds.
    public func offsetSeconds(milliseconds: Int64) -> Int {
        zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// Minutes since local midnight at `milliseconds` since 1970.
    public func minuteOfDay(milliseconds: Int64) -> Int {
        let offset = Int64(offsetSeconds(milliseconds: milliseconds))
        let seconds = (milliseconds / 1000 + offset) % 86_400
        return Int((seconds + 86_400) % 86_400) / 60
    }
}
