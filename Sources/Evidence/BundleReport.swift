import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// What `junction verify` and `commune verify` answer about a bundle, with no network and no
/// index: authentic (every seal and link holds, no byte changed) and complete from `from` to
/// `to` except the stretches listed, with the evidence about time.
public struct BundleReport: Codable, Sendable {
    /// A stretch of the range and why (the manifest's `Hole`).
    public typealias Stretch = EvidenceManifest.Hole

    public struct TimeEvidence: Codable, Sendable {
        /// Every record of the range was made with the box's clock synchronised.
        public var clockSynchronized: Bool
        /// The commune received (and countersigned) a chain head covering the range at this
        /// time: the footage existed by then, by the commune's clock.
        public var countersignedAt: Timestamp?
        public var countersignedRecord: Int64?
        public var communeKey: String?
        enum CodingKeys: String, CodingKey {
            case clockSynchronized = "clock_synchronized", countersignedAt = "countersigned_at"
            case countersignedRecord = "countersigned_record", communeKey = "commune_key_fingerprint"
        }
    }

    public var authentic: Bool
    public var complete: Bool
    /// The device key is bound by a commune key the verifier was told to trust (issue 23).
    /// Without such an anchor a bundle can be consistent, never "authentic": anyone can make a
    /// consistent bundle under a key of their own.
    public var anchored: Bool
    /// The keys the answer rests on, in words (which commune key bound which device key, who
    /// signed the manifest), for the officer to compare with the commune's published fingerprint.
    public var reliedOn: [String]
    public var device: String
    public var from: Timestamp
    public var to: Timestamp
    public var deviceKey: String?
    public var verifiedSegments: Int
    /// Stretches the box declared it has no footage of (camera down, box off…).
    public var declaredGaps: [Stretch]
    /// Recorded and sealed, but the footage is not in the bundle (overwritten, damaged).
    public var missingFootage: [Stretch]
    /// Stretches no record covers: nothing says what happened then.
    public var undeclared: [Stretch]
    public var time: TimeEvidence
    /// What is wrong: a changed byte, a removed or moved record, a foreign key, an edited manifest.
    public var problems: [String]
    /// Which software sealed the verified segments, in record order (issue 24: a court can tell
    /// what made a clip): one entry per run of records made by the same release.
    public var software: [Made]

    public struct Made: Codable, Sendable, Equatable {
        public var software: String
        public var firstRecord: Int64
        public var lastRecord: Int64
        public var segments: Int
        enum CodingKeys: String, CodingKey { case software, firstRecord = "first_record", lastRecord = "last_record", segments }
    }

    /// Counts a verified segment towards the software that sealed it.
    mutating func made(by software: String?, record: Int64) {
        let name = software ?? "not recorded (a box from before updates)"
        if var last = self.software.last, last.software == name {
            last.lastRecord = record
            last.segments += 1
            self.software[self.software.count - 1] = last
        } else if self.software.count < 1000 {
            self.software.append(.init(software: name, firstRecord: record, lastRecord: record, segments: 1))
        }
    }

    /// The answer in one word, and the exit status that goes with it (the format, "Exit status").
    public enum Verdict: String, Codable, Sendable {
        case authenticComplete = "authentic_complete", authenticIncomplete = "authentic_incomplete"
        case notAuthentic = "not_authentic", unanchored = "consistent_unanchored", unreadable
        public var exitStatus: Int32 {
            switch self {
            case .authenticComplete: 0
            case .notAuthentic: 1
            case .authenticIncomplete: 2
            case .unanchored: 3
            case .unreadable: 4
            }
        }
    }

    public var verdict: Verdict {
        if device.isEmpty { return .unreadable }
        if !authentic { return .notAuthentic }
        if !anchored { return .unanchored }
        return complete ? .authenticComplete : .authenticIncomplete
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(authentic, forKey: .authentic)
        try c.encode(complete, forKey: .complete)
        try c.encode(anchored, forKey: .anchored)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(reliedOn, forKey: .reliedOn)
        try c.encode(device, forKey: .device)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encodeIfPresent(deviceKey, forKey: .deviceKey)
        try c.encode(verifiedSegments, forKey: .verifiedSegments)
        try c.encode(declaredGaps, forKey: .declaredGaps)
        try c.encode(missingFootage, forKey: .missingFootage)
        try c.encode(undeclared, forKey: .undeclared)
        try c.encode(time, forKey: .time)
        try c.encode(problems, forKey: .problems)
        try c.encode(software, forKey: .software)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        authentic = try c.decode(Bool.self, forKey: .authentic)
        complete = try c.decode(Bool.self, forKey: .complete)
        anchored = try c.decodeIfPresent(Bool.self, forKey: .anchored) ?? false
        reliedOn = try c.decodeIfPresent([String].self, forKey: .reliedOn) ?? []
        device = try c.decode(String.self, forKey: .device)
        from = try c.decode(Timestamp.self, forKey: .from)
        to = try c.decode(Timestamp.self, forKey: .to)
        deviceKey = try c.decodeIfPresent(String.self, forKey: .deviceKey)
        verifiedSegments = try c.decode(Int.self, forKey: .verifiedSegments)
        declaredGaps = try c.decode([Stretch].self, forKey: .declaredGaps)
        missingFootage = try c.decode([Stretch].self, forKey: .missingFootage)
        undeclared = try c.decode([Stretch].self, forKey: .undeclared)
        time = try c.decode(TimeEvidence.self, forKey: .time)
        problems = try c.decode([String].self, forKey: .problems)
        software = try c.decodeIfPresent([Made].self, forKey: .software) ?? []
    }

    init(device: String, from: Timestamp, to: Timestamp, problems: [String] = []) {
        self.authentic = false
        self.complete = false
        self.anchored = false
        self.reliedOn = []
        self.device = device
        self.from = from
        self.to = to
        self.verifiedSegments = 0
        self.declaredGaps = []
        self.missingFootage = []
        self.undeclared = []
        self.time = .init(clockSynchronized: false)
        self.problems = problems
        self.software = []
    }

    enum CodingKeys: String, CodingKey {
        case authentic, complete, anchored, device, from, to, time, problems, verdict, software
        case reliedOn = "relied_on"
        case deviceKey = "device_key_fingerprint", verifiedSegments = "verified_segments", declaredGaps = "declared_gaps"
        case missingFootage = "missing_footage", undeclared
    }
}
