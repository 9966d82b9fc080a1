/// A token bucket: `upload.max_kbps` as a cap on what the uplink sends, so footage does not
/// crowd out everything else on a shared 4G dongle. Bodies are sent in slices, each taking its
/// bytes from the bucket first (a quarter of a second of burst at most).
public actor RateLimiter {
    public let bytesPerSecond: Double
    let capacity: Double
    var tokens: Double
    var last: ContinuousClock.Instant
    let clock = ContinuousClock()

    /// - Parameter kbps: kilobits per second (1 kbit = 1000 bits), > 0.
    public init(kbps: Int) {
        bytesPerSecond = Double(kbps) * 1000 / 8
        capacity = max(bytesPerSecond / 4, 4096)
        tokens = capacity
        last = ContinuousClock.now
    }

    /// Waits until `bytes` may be sent, then takes them.
    public func take(_ bytes: Int) async throws {
        let now = clock.now
        let elapsed = now - last
        last = now
        tokens = min(capacity, tokens + (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * bytesPerSecond)
        tokens -= Double(bytes)
        if tokens < 0 {
            // In debt: wait until it is paid off (the next call refills from here).
            try await Task.sleep(for: .milliseconds(Int64((-tokens / bytesPerSecond) * 1000)))
        }
    }

    /// The slice size bodies are cut into: small enough to pace smoothly.
    public var slice: Int { Int(max(1024, min(capacity, 16384))) }
}
