import Foundation

/// The box's local time (`[device] time_zone`): the minute of the day a motion schedule is read
/// at. Foundation's time zones carry their own tz data, so a box without tzdata still knows them.
public struct LocalTime: Sendable {
    let zone: TimeZone

    /// Nil when `identifier` names no time zone.
    public init?(identifier: String) {
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        self.zone = zone
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
