import Ring
import Synchronization
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the uplink is doing, for `junction status`: written by the daemon as `uplink.json` beside
/// `status.json` (at most once a second, atomically, not fsynced).
public struct UplinkHealth: Codable, Sendable, Equatable {
    public struct Current: Codable, Sendable, Equatable {
        public var segment: String
        public var offset: Int64
        public var bytes: Int64
        public var bytesPerSecond: Double
        enum CodingKeys: String, CodingKey { case segment, offset, bytes, bytesPerSecond = "bytes_per_second" }
    }
    public var server: String
    /// nil until the first exchange.
    public var connected: Bool?
    public var lastContact: Timestamp?
    public var lastHeartbeat: Timestamp?
    public var lastError: String?
    public var current: Current?
    public var uploadedThisRun: Int = 0
    /// Flagged segments waiting to go up at the last look (nil before the first): an update's
    /// download and its reboot wait while it is above 0 (evidence first).
    public var queued: Int?
    public var updatedAt: Timestamp = .now()
    /// The kernel's boot id of the daemon's run (see RecorderHealth.bootID).
    public var bootID: String?

    public init(server: String, bootID: String? = nil) {
        self.server = server
        self.bootID = bootID
    }

    enum CodingKeys: String, CodingKey {
        case server, connected, current
        case lastContact = "last_contact", lastHeartbeat = "last_heartbeat", lastError = "last_error"
        case uploadedThisRun = "uploaded_this_run", queued, updatedAt = "updated_at", bootID = "boot_id"
    }
}

public final class UplinkMonitor: Sendable {
    private let state: Mutex<(health: UplinkHealth, lastWrite: ContinuousClock.Instant?, rateMark: (offset: Int64, at: ContinuousClock.Instant)?)>
    let path: String?

    public init(server: String, path: String?, bootID: String? = nil) {
        state = Mutex((UplinkHealth(server: server, bootID: bootID), nil, nil))
        self.path = path
    }

    public var health: UplinkHealth { state.withLock { $0.health } }

    /// Whether, by the uplink.json at `path`, flagged footage of this boot waits to go up or is
    /// going up now. A file of another boot, or older than `freshSeconds`, says nothing waits: its
    /// daemon is gone, and the uploads resume from the ring whenever one runs again.
    public static func evidenceWaiting(path: String, bootID: String, now: Timestamp = .now(), freshSeconds: Double = 600) -> Bool {
        guard let d = FileManager.default.contents(atPath: path), d.count <= 1 << 16,
              let h = try? JSONDecoder().decode(UplinkHealth.self, from: d), h.bootID == bootID,
              now.seconds(since: h.updatedAt) <= freshSeconds else { return false }
        return (h.queued ?? 0) > 0 || h.current != nil
    }

    public func update(force: Bool = false, _ change: (inout UplinkHealth) -> Void) {
        let snapshot: UplinkHealth? = state.withLock { s in
            change(&s.health)
            s.health.updatedAt = .now()
            let now = ContinuousClock.now
            guard force || s.lastWrite.map({ now - $0 >= .seconds(1) }) ?? true else { return nil }
            s.lastWrite = now
            return s.health
        }
        if let snapshot { write(snapshot) }
    }

    /// An upload moved on: keeps the current file, offset and a smoothed rate.
    public func progress(segment: String, offset: Int64, bytes: Int64) {
        let rate: Double = state.withLock { s in
            let now = ContinuousClock.now
            var rate = s.health.current?.segment == segment ? s.health.current?.bytesPerSecond ?? 0 : 0
            if let mark = s.rateMark, offset > mark.offset {
                let d = now - mark.at
                let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                if seconds > 0 { rate = rate == 0 ? Double(offset - mark.offset) / seconds : 0.7 * rate + 0.3 * Double(offset - mark.offset) / seconds }
            }
            s.rateMark = (offset, now)
            return rate
        }
        update { $0.current = .init(segment: segment, offset: offset, bytes: bytes, bytesPerSecond: rate); $0.connected = true; $0.lastContact = .now() }
    }

    private func write(_ health: UplinkHealth) {
        guard let path else { return }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? e.encode(health) else { return }
        try? FileSystem.writeAtomically(data, to: path)
    }
}
