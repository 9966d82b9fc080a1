import Commune
import Wire

/// A box as the desk shows it: what its last heartbeat said and the alarms an officer must see.
/// Pure, so every rule is tested without a server.
struct BoxStatus: Equatable {
    enum Alarm: String, CaseIterable, Equatable {
        /// Registered, no heartbeat ever.
        case neverSeen
        /// No heartbeat for more than three of its intervals.
        case silent
        /// Its last heartbeat said it was not recording.
        case cameraDown
        /// Pinned footage near its cap (new flags will be refused) or the card nearly out of space.
        case cardFull
        case clockNotSynchronised
        case damagedFootage

        /// How urgent: a box that was working and went quiet outranks one never installed.
        var severity: Int {
            switch self {
            case .silent: 100
            case .cameraDown: 60
            case .damagedFootage: 50
            case .cardFull: 40
            case .neverSeen: 20
            case .clockNotSynchronised: 10
            }
        }

        var key: Key {
            switch self {
            case .neverSeen: .alarmNeverSeen
            case .silent: .alarmSilent
            case .cameraDown: .alarmCameraDown
            case .cardFull: .alarmCardFull
            case .clockNotSynchronised: .alarmClock
            case .damagedFootage: .alarmDamaged
            }
        }
    }

    /// Heartbeats a box may miss before it is called silent.
    static let missedHeartbeats = 3
    static let defaultHeartbeatSeconds = 60
    /// Pinned bytes at or above this share of the pin cap raise `cardFull`.
    static let pinnedAlarmPercent: Int64 = 80
    /// Free space below this share of the ring's budget raises `cardFull`.
    static let freeAlarmPercent: Int64 = 2

    var device: Catalog.Device
    var alarms: [Alarm]

    init(_ device: Catalog.Device, now: Timestamp) {
        self.device = device
        var alarms: [Alarm] = []
        if let seen = device.lastSeen {
            let interval = Double(device.health?.heartbeatSeconds ?? Self.defaultHeartbeatSeconds)
            if now.seconds(since: seen) > interval * Double(Self.missedHeartbeats) { alarms.append(.silent) }
        } else {
            alarms.append(.neverSeen)
        }
        if let h = device.health {
            if h.recording != "recording" { alarms.append(.cameraDown) }
            // Saturating: the decoder bounds these, and a stored row or a bound raised later
            // still cannot make `× 100` trap (issue 22).
            let pinnedHigh = h.pinnedCapBytes > 0
                && h.pinnedBytes.multiplied(saturating: 100) >= h.pinnedCapBytes.multiplied(saturating: Self.pinnedAlarmPercent)
            let freeLow = h.budgetBytes > 0
                && h.freeBytes.multiplied(saturating: 100) < h.budgetBytes.multiplied(saturating: Self.freeAlarmPercent)
            if pinnedHigh || freeLow { alarms.append(.cardFull) }
            if !h.clockSynchronized { alarms.append(.clockNotSynchronised) }
            if (h.damagedSegments ?? 0) > 0 { alarms.append(.damagedFootage) }
        }
        self.alarms = alarms
    }

    var severity: Int { alarms.reduce(0) { $0 + $1.severity } }

    /// Boxes with a problem first (the most urgent first: see `Alarm.severity`), then by name.
    static func sorted(_ devices: [Catalog.Device], now: Timestamp) -> [BoxStatus] {
        devices.map { BoxStatus($0, now: now) }.sorted {
            ($0.severity, $1.device.id) > ($1.severity, $0.device.id)
        }
    }
}
