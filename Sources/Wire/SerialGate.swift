/// Lets one task at a time through, in arrival order: a FIFO lock that suspends instead of
/// blocking a thread. The box's index and the commune's catalog pass every statement and every
/// transaction through one, so no statement of another task lands inside a transaction (or is
/// rolled back with it) and a check-then-write cannot be raced.
public actor SerialGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func enter() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Hands the gate to the next in line, or opens it.
    public func leave() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
