/// The health check a release on trial must pass before its boot entry is blessed (issue 24):
/// the box exists to record and deliver, so "healthy" is exactly that — at least `segments`
/// segments sealed by the recorder in this boot, and a heartbeat the commune accepted in this
/// boot, both within `deadlineSeconds` of the boot. `junction update health` (run by
/// junction-health.service before boot-complete.target) feeds it what the daemon publishes
/// (status.json, uplink.json) until it passes or the deadline goes by.
///
/// Files from another boot (the data partition outlives every boot) count for nothing: each
/// carries the kernel's boot id. The recorder's count restarts with each run of the daemon, so
/// the gate adds up the runs it saw, told apart by pid. Time is the boot clock (uptime), not the
/// wall clock, which may step when NTP first answers.
public struct HealthGate: Sendable, Equatable {
    public struct Requirement: Sendable, Equatable {
        public var segments: Int
        public var deadlineSeconds: Int
        public init(segments: Int, deadlineSeconds: Int) {
            self.segments = segments
            self.deadlineSeconds = deadlineSeconds
        }
    }

    /// One look at the daemon's files (nil fields: the file is missing or unreadable).
    public struct Observation: Sendable, Equatable {
        public var recorderBootID: String?
        public var recorderPID: Int32?
        public var segmentsWritten: Int
        public var uplinkBootID: String?
        public var heartbeatAccepted: Bool
        public init(recorderBootID: String? = nil, recorderPID: Int32? = nil, segmentsWritten: Int = 0,
                    uplinkBootID: String? = nil, heartbeatAccepted: Bool = false) {
            self.recorderBootID = recorderBootID
            self.recorderPID = recorderPID
            self.segmentsWritten = segmentsWritten
            self.uplinkBootID = uplinkBootID
            self.heartbeatAccepted = heartbeatAccepted
        }
    }

    public enum Verdict: Sendable, Equatable {
        case passed
        case waiting(String)
        case failed(String)
    }

    public let requirement: Requirement
    public let bootID: String
    /// Segments counted in runs of the recorder already over (saturating).
    public private(set) var earlierRuns = 0
    public private(set) var runPID: Int32?
    public private(set) var runSegments = 0
    public private(set) var heartbeatSeen = false

    public init(requirement: Requirement, bootID: String) {
        self.requirement = requirement
        self.bootID = bootID
    }

    /// Segments sealed in this boot, as far as the gate has seen.
    public var segments: Int {
        let (sum, overflow) = earlierRuns.addingReportingOverflow(runSegments)
        return overflow ? Int.max : sum
    }

    public mutating func observe(_ o: Observation) {
        if o.heartbeatAccepted, o.uplinkBootID == bootID { heartbeatSeen = true }
        guard o.recorderBootID == bootID, let pid = o.recorderPID else { return }
        let written = max(0, o.segmentsWritten)
        if runPID == pid {
            runSegments = max(runSegments, written)
        } else {
            if runPID != nil { earlierRuns = segments }
            runPID = pid
            runSegments = written
        }
    }

    /// What the gate says `elapsedSeconds` after boot (or after what `since` names: the
    /// settings check counts from the recorder's restart).
    public func verdict(elapsedSeconds: Double, since: String = "boot") -> Verdict {
        let recorded = segments >= requirement.segments
        if recorded, heartbeatSeen { return .passed }
        var missing: [String] = []
        if !recorded { missing.append("recorded \(segments) of \(requirement.segments) segments") }
        if !heartbeatSeen { missing.append("no heartbeat accepted by the commune") }
        let what = missing.joined(separator: ", ")
        guard elapsedSeconds >= Double(requirement.deadlineSeconds) else { return .waiting(what) }
        return .failed("\(what) within \(requirement.deadlineSeconds) s of \(since)")
    }
}
