import Wire

/// Slows password guessing without handing an attacker the power to lock officers out (issue 22).
/// Within `windowSeconds`, an attempt is refused (429) when its address has failed
/// `maxFailuresPerAddress` times, or its operator name `maxFailures` times from browsers not known
/// for that name. A browser that name signed in from before (`Catalog.addKnownBrowser`, a cookie)
/// counts its own failures instead (`maxFailuresPerBrowser`): a stranger guessing an officer's
/// password locks out only strangers' browsers for that name, never the officer's own desk PC
/// with the right password. Addresses are the client's (behind `[desk] trusted_proxies`, the one
/// the proxy names), so one person behind the proxy no longer locks everyone out. Memory is
/// bounded: at most `maxTracked` keys, the stalest dropped first.
actor SignInThrottle {
    static let maxFailures = 5
    static let maxFailuresPerAddress = 20
    static let maxFailuresPerBrowser = 5
    static let windowSeconds = 15.0 * 60
    static let maxTracked = 10_000

    private var failures: [String: [Timestamp]] = [:]

    /// The keys an attempt counts against: its address, and its known browser or else its name.
    private static func keys(address: String, name: String, browser: String?) -> [String] {
        ["a:" + address, browser.map { "b:" + $0 + ":" + name } ?? "n:" + name]
    }

    /// True when this attempt may go ahead. `browser`: the known-browser cookie, when the
    /// catalog says it is one of `name`'s.
    func allows(address: String, name: String, browser: String? = nil, now: Timestamp) -> Bool {
        let k = Self.keys(address: address, name: name, browser: browser)
        return recent(k[0], now: now).count < Self.maxFailuresPerAddress
            && recent(k[1], now: now).count < (browser == nil ? Self.maxFailures : Self.maxFailuresPerBrowser)
    }

    func failed(address: String, name: String, browser: String? = nil, now: Timestamp) {
        for key in Self.keys(address: address, name: name, browser: browser) {
            failures[key] = recent(key, now: now) + [now]
        }
        if failures.count > Self.maxTracked {
            let stalest = failures.sorted { ($0.value.last ?? now) < ($1.value.last ?? now) }.prefix(failures.count - Self.maxTracked)
            for (key, _) in stalest { failures[key] = nil }
        }
    }

    /// A right password clears the count it was held to: the known browser's, or the name's
    /// (not the address's: one office, many officers). A known browser's success leaves the
    /// strangers' count on the name alone: they are still held back.
    func succeeded(name: String, browser: String? = nil) {
        if let browser { failures["b:" + browser + ":" + name] = nil } else { failures["n:" + name] = nil }
    }

    private func recent(_ key: String, now: Timestamp) -> [Timestamp] {
        Array((failures[key] ?? []).filter { now.seconds(since: $0) < Self.windowSeconds }.suffix(Self.maxFailuresPerAddress))
    }
}
