import Wire

/// A rollout of one release to a commune's boxes, in waves (issue 24): the first wave are the
/// canaries; each next wave opens when every box of the one before is blessed on the new
/// release and has been recording for `soak`; one failed canary, or more than
/// `maxFailedPercent` of a wave failed, stops it with the reason. At most `maxDownloads`
/// boxes fetch at once, and a box with an open footage request is not offered the release
/// until the request is done (evidence first). A box that failed waits in the penalty box:
/// it is not offered this release again until an operator says `commune rollout retry`.
/// Pure: the catalog stores it, the heartbeat drives it.
public struct Rollout: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case running, stopped, done }

    public var id: String
    public var version: String
    public var arch: String
    /// Boxes per wave; nil is "all the rest".
    public var waves: [Int?]
    public var state: State
    /// The wave open now (0-based).
    public var wave: Int
    public var reason: String?
    public var maxFailedPercent: Int
    public var soakSeconds: Int
    public var maxDownloads: Int
    public var created: Timestamp
    public var updated: Timestamp

    public static let maxWaves = 16

    /// `2,8,30,all`: counts of boxes, the last may be `all` (the rest); without it the boxes past
    /// the counts form a last wave of their own.
    public static func parseWaves(_ text: String) -> [Int?]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingPrefixSpaces() }
        guard (1...maxWaves).contains(parts.count) else { return nil }
        var waves: [Int?] = []
        for (i, p) in parts.enumerated() {
            if p == "all" {
                guard i == parts.count - 1 else { return nil }
                waves.append(nil)
            } else {
                guard p.utf8.count <= 5, let n = Int(p), n >= 1 else { return nil }
                waves.append(n)
            }
        }
        if waves.last! != nil { waves.append(nil) }
        return waves
    }

    public static func describe(_ waves: [Int?]) -> String { waves.map { $0.map(String.init) ?? "all" }.joined(separator: ",") }

    /// Which wave each box falls in, in the order given (the catalog gives them sorted by id).
    public func assign(_ devices: [String]) -> [(String, Int)] {
        var out: [(String, Int)] = []
        var i = 0
        for (w, count) in waves.enumerated() {
            let n = count ?? (devices.count - i)
            for d in devices[i..<min(devices.count, i + n)] { out.append((d, w)) }
            i = min(devices.count, i + n)
        }
        return out
    }
}

extension Substring {
    func trimmingPrefixSpaces() -> String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}

/// One box in a rollout.
public struct RolloutBox: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        /// Its wave is not open yet, or it has not been offered the release.
        case waiting
        /// Told to fetch it (counts against `maxDownloads` until it reports it installed).
        case offered
        /// Installed in its other slot, waiting for the reboot.
        case installed
        /// Running the new slot on trial.
        case trial
        /// Running it, blessed.
        case blessed
        /// Refused it, rolled back, or failed to install it: the penalty box.
        case failed
    }
    public var device: String
    public var wave: Int
    public var state: State
    public var reason: String?
    public var updated: Timestamp
    public var blessedAt: Timestamp?
    public static let retried = "retried by an operator"

    public init(device: String, wave: Int, state: State = .waiting, reason: String? = nil, updated: Timestamp, blessedAt: Timestamp? = nil) {
        self.device = device
        self.wave = wave
        self.state = state
        self.reason = reason
        self.updated = updated
        self.blessedAt = blessedAt
    }
}

public enum RolloutEngine {
    /// What a box's report says of its part in the rollout of `version`.
    public static func advance(_ box: RolloutBox, report: FleetUpdate.Report, version: String, now: Timestamp) -> RolloutBox {
        var b = box
        func set(_ s: RolloutBox.State, _ reason: String? = nil) {
            if b.state != s || b.reason != reason { b.updated = now }
            b.state = s
            b.reason = reason
        }
        guard b.state != .failed else { return b }
        // Retried by an operator: what failed before the retry no longer counts.
        let retried = b.reason == RolloutBox.retried
        let running = report.slots.first { $0.name == report.booted }
        if report.release == version, running?.state == "good" {
            if b.state != .blessed { b.blessedAt = now }
            set(.blessed)
        } else if let last = report.last, last.version == version, ["rolled_back", "failed", "refused"].contains(last.result),
                  !(retried && last.at <= b.updated) {
            set(.failed, last.reason.map { "\(last.result): \($0)" } ?? last.result)
        } else if !retried, report.failed.contains(version) {
            set(.failed, "the box lists \(version) as failed")
        } else if report.pending == version {
            set(report.release == version ? .trial : .installed)
        }
        return b
    }

    /// Moves the rollout on (or stops it) from its boxes; `recording` tells which boxes record now.
    public static func step(_ rollout: Rollout, boxes: [RolloutBox], recording: Set<String>, now: Timestamp) -> (Rollout, String?) {
        var r = rollout
        guard r.state == .running else { return (r, nil) }
        while r.wave < r.waves.count {
            let wave = boxes.filter { $0.wave == r.wave }
            let failed = wave.filter { $0.state == .failed }
            if r.wave == 0, let f = failed.first {
                r.state = .stopped
                r.reason = "canary \(f.device) failed: \(f.reason ?? "no reason given")"
                r.updated = now
                return (r, r.reason)
            }
            if !wave.isEmpty, failed.count * 100 > r.maxFailedPercent * wave.count {
                r.state = .stopped
                r.reason = "\(failed.count) of \(wave.count) boxes of wave \(r.wave + 1) failed (more than \(r.maxFailedPercent) %): \(failed.prefix(3).map(\.device).joined(separator: ", "))"
                r.updated = now
                return (r, r.reason)
            }
            let soaked = wave.allSatisfy { b in
                b.state == .failed || (b.state == .blessed && recording.contains(b.device)
                    && (b.blessedAt.map { now.milliseconds - $0.milliseconds >= Int64(r.soakSeconds) * 1000 } ?? false))
            }
            guard soaked else { return (r, nil) }
            r.wave += 1
            r.updated = now
            if r.wave == r.waves.count {
                r.state = .done
                return (r, "every wave is done")
            }
            if !boxes.contains(where: { $0.wave == r.wave }) { continue }
            return (r, "wave \(r.wave + 1) opened")
        }
        return (r, nil)
    }

    /// Whether `box` is offered the release now.
    public static func offers(_ rollout: Rollout, _ box: RolloutBox, downloading: Int, openRequest: Bool) -> Bool {
        guard rollout.state == .running, box.wave <= rollout.wave, !openRequest else { return false }
        switch box.state {
        case .offered: return true
        case .waiting: return downloading < rollout.maxDownloads
        default: return false
        }
    }
}
