/// Capped exponential backoff with full jitter, as a value: 1 s, 2 s, 4 s … up to 30 s, each
/// delay drawn between half and all of its step so a commune's boxes do not retry in lockstep.
public struct Backoff: Sendable, Equatable {
    public var initial: Double
    public var maximum: Double
    public private(set) var attempt = 0

    public init(initial: Double = 1, maximum: Double = 30) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The ceiling of the next delay, without jitter.
    public var currentStep: Double { min(maximum, initial * Double(1 << min(attempt, 20))) }

    /// The next delay in seconds; `random` is a number in 0..<1.
    public mutating func next(random: Double) -> Double {
        let step = currentStep
        attempt += 1
        return step * (0.5 + 0.5 * random)
    }

    public mutating func reset() { attempt = 0 }
}
