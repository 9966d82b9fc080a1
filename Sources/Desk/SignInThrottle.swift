import Wire

/// Slows password guessing: after `maxFailures` failed sign-ins for one operator name, or
/// `maxFailuresPerAddress` from one address (higher: a commune office signs in from behind one
/// address), within `windowSeconds`, further attempts for that name or from that address are
/// refused (429) until the window has passed, right password or not. Memory is bounded: at most
/// `maxTracked` keys are kept, the stalest dropped first.
actor SignInThrottle {
    static let maxFailures = 5
    static let maxFailuresPerAddress = 20
    static let windowSeconds = 15.0 * 60
    static let maxTracked = 10_000

    private var failures: [String: [Timestamp]] = [:]

    /// True when this attempt may go ahead.
    func allows(address: String, name: String, now: Timestamp) -> Bool {
        recent("n:" + name, now: now).count < Self.maxFailures && recent("a:" + address, now: now).count < Self.maxFailuresPerAddress
    }

    func failed(address: String, name: String, now: Timestamp) {
        for key in ["a:" + address, "n:" + name] {
            failures[key] = recent(key, now: now) + [now]
        }
        if failures.count > Self.maxTracked {
            let stalest = failures.sorted { ($0.value.last ?? now) < ($1.value.last ?? now) }.prefix(failures.count - Self.maxTracked)
            for (key, _) in stalest { failures[key] = nil }
        }
    }

    /// A right password clears the name's count (not the address's: one office, many officers).
    func succeeded(name: String) {
        failures["n:" + name] = nil
    }

    private func recent(_ key: String, now: Timestamp) -> [Timestamp] {
        Array((failures[key] ?? []).filter { now.seconds(since: $0) < Self.windowSeconds }.suffix(Self.maxFailuresPerAddress))
    }
}
