import CJunctionSys
import Ring
#if canImport(Glibc)
import Glibc
#endif

/// The clocks a recording is timed with. Tests replace it.
public protocol HostClock: Sendable {
    /// UTC wall clock.
    func now() -> Timestamp
    /// CLOCK_BOOTTIME in nanoseconds (keeps counting through suspend; never steps).
    func monotonicNanos() -> Int64
    /// Whether the kernel says the wall clock is synchronised (NTP, or a set RTC).
    func isSynchronized() -> Bool
    /// This boot's id (/proc/sys/kernel/random/boot_id).
    var bootID: String { get }
}

/// The real clocks of this machine.
public struct SystemClock: HostClock {
    public let bootID: String

    public init() {
        bootID = Self.readBootID()
    }

    public func now() -> Timestamp { Timestamp.now() }

    public func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// `adjtimex` reports TIME_ERROR while the clock is unsynchronised (STA_UNSYNC). Where it may
    /// not be asked, systemd-timesyncd's flag file says whether it has synchronised the clock;
    /// without either, the clock counts as not synchronised (never claim a time we cannot vouch for).
    public func isSynchronized() -> Bool {
        switch csys_clock_synchronized() {
        case 1: return true
        case 0: return false
        default: return access("/run/systemd/timesync/synchronized", F_OK) == 0
        }
    }

    static func readBootID() -> String {
        guard let f = fopen("/proc/sys/kernel/random/boot_id", "r") else { return "unknown" }
        defer { fclose(f) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = fread(&buf, 1, 63, f)
        return String(decoding: buf[0..<n], as: UTF8.self).filter { $0.isHexDigit || $0 == "-" }
    }
}
