/// What goes beside exported footage, from the box (`junction export`) and from the commune's
/// desk alike: enough to show where every byte came from. Each part's sha256 is of the file
/// written; each source's is the one recorded when the box wrote the segment (the evidence),
/// with `verified` saying whether the source still had it when it was exported.
public struct EvidenceManifest: Codable, Sendable, Equatable {
    public struct Part: Codable, Sendable, Equatable {
        public var file: String
        public var bytes: Int64
        public var sha256: String
        public var from: Timestamp
        public var to: Timestamp
        public var segments: Int

        public init(file: String, bytes: Int64, sha256: String, from: Timestamp, to: Timestamp, segments: Int) {
            self.file = file
            self.bytes = bytes
            self.sha256 = sha256
            self.from = from
            self.to = to
            self.segments = segments
        }
    }

    public struct Source: Codable, Sendable, Equatable {
        public var file: String
        public var start: Timestamp
        public var end: Timestamp
        public var bytes: Int64
        public var sha256: String
        public var verified: Bool
        public var part: Int?

        public init(file: String, start: Timestamp, end: Timestamp, bytes: Int64, sha256: String, verified: Bool, part: Int?) {
            self.file = file
            self.start = start
            self.end = end
            self.bytes = bytes
            self.sha256 = sha256
            self.verified = verified
            self.part = part
        }
    }

    public struct Hole: Codable, Sendable, Equatable {
        public var from: Timestamp
        public var to: Timestamp
        public var reason: String

        public init(from: Timestamp, to: Timestamp, reason: String) {
            self.from = from
            self.to = to
            self.reason = reason
        }
    }

    public var device: String
    public var camera: String
    public var from: Timestamp
    public var to: Timestamp
    public var exportedAt: Timestamp
    public var junctionVersion: String
    public var clockSynchronized: Bool
    public var parts: [Part]
    public var segments: [Source]
    public var gaps: [Hole]
    /// Set by the commune's desk: the footage request, its reason and the officer who took it.
    public var request: String?
    public var reason: String?
    public var exportedBy: String?
    /// The folder beside the manifest holding what proves the footage (issue 13): the sealed
    /// original segments, the chain records, the device's key, the commune's countersignatures.
    /// `junction verify` / `commune verify` check it (README, "Evidence bundles").
    public var proof: String?

    public init(device: String, camera: String, from: Timestamp, to: Timestamp, exportedAt: Timestamp, junctionVersion: String,
                clockSynchronized: Bool, parts: [Part], segments: [Source], gaps: [Hole],
                request: String? = nil, reason: String? = nil, exportedBy: String? = nil) {
        self.device = device
        self.camera = camera
        self.from = from
        self.to = to
        self.exportedAt = exportedAt
        self.junctionVersion = junctionVersion
        self.clockSynchronized = clockSynchronized
        self.parts = parts
        self.segments = segments
        self.gaps = gaps
        self.request = request
        self.reason = reason
        self.exportedBy = exportedBy
        self.proof = nil
    }

    enum CodingKeys: String, CodingKey {
        case device, camera, from, to, parts, segments, gaps, request, reason, proof
        case exportedAt = "exported_at", junctionVersion = "junction_version", clockSynchronized = "clock_synchronized"
        case exportedBy = "exported_by"
    }

    /// Stretches of `from`–`to` that `covered` (sorted by start) leaves out, over 1 s each, with
    /// the reason `reasonFor` gives (or "not recorded").
    public static func holes(from: Timestamp, to: Timestamp, covered: [(start: Timestamp, end: Timestamp)],
                             reasonFor: (Timestamp, Timestamp) -> String? = { _, _ in nil }) -> [Hole] {
        var holes: [Hole] = []
        var cursor = from
        for c in covered {
            if c.start.seconds(since: cursor) > 1 {
                holes.append(.init(from: cursor, to: c.start, reason: reasonFor(cursor, c.start) ?? "not recorded"))
            }
            cursor = max(cursor, c.end)
        }
        if to.seconds(since: cursor) > 1 { holes.append(.init(from: cursor, to: to, reason: "not recorded")) }
        return holes
    }
}
