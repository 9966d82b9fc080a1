/// Remote settings (issue 24, item 7): the commune sends a box a change of its junction.toml on
/// the heartbeat, as the same path as a release. The change is a TOML fragment of the keys it
/// sets (only those `SettingsOverlay.allowed` lets the commune set); the box validates it
/// against its own file, applies it, keeps it only if the recorder goes on recording and the
/// commune is reached, and reports what became of it. Each revision is tried once.
public enum RemoteSettings {
    /// Bounds (README, "Limits"): a fragment of a config, and revisions a commune can count.
    public static let maxTOMLBytes = 16 << 10
    public static let revisions: ClosedRange<Int64> = 1...(Int64(1) << 40)
    public static let maxText = 500

    /// The commune's offer: revision `revision` of this box's settings from the commune.
    public struct Offer: Sendable, Codable, Equatable {
        public var revision: Int64
        public var toml: String
        public init(revision: Int64, toml: String) {
            self.revision = revision
            self.toml = toml
        }
        enum CodingKeys: String, CodingKey { case revision, toml }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            revision = try c.decode(Int64.self, forKey: .revision, in: revisions)
            toml = try c.decode(String.self, forKey: .toml, maxCharacters: maxTOMLBytes)
            guard toml.utf8.count <= maxTOMLBytes else {
                throw DecodingError.dataCorruptedError(forKey: .toml, in: c, debugDescription: "settings longer than \(maxTOMLBytes) bytes")
            }
        }
    }

    public enum Result: String, Sendable, Codable, Equatable {
        /// Validated, applied, and the box recorded and reached the commune with it.
        case applied
        /// Applied, but recording or the commune stopped: the previous settings are back.
        case rolledBack = "rolled_back"
        /// Not valid on this box (syntax, a key the commune may not set, a value out of range): nothing changed.
        case refused
        /// The installer edited junction.toml on the card since: the card's file is in force alone.
        case superseded
    }

    /// What became of one revision.
    public struct Outcome: Sendable, Codable, Equatable {
        public var revision: Int64
        public var result: Result
        public var reason: String?
        public var at: Timestamp
        public init(revision: Int64, result: Result, reason: String?, at: Timestamp) {
            self.revision = revision
            self.result = result
            self.reason = reason
            self.at = at
        }
        enum CodingKeys: String, CodingKey { case revision, result, reason, at }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            revision = try c.decode(Int64.self, forKey: .revision, in: revisions)
            result = try c.decode(Result.self, forKey: .result)
            reason = try c.decodeIfPresent(String.self, forKey: .reason, maxCharacters: maxText)
            at = try c.decode(Timestamp.self, forKey: .at)
        }
    }

    /// The box's side, in every heartbeat: the revision in force (nil: the installer's file
    /// alone), the newest revision it has seen (it takes only newer ones), and the last outcome.
    public struct Report: Sendable, Codable, Equatable {
        public var inForce: Int64?
        public var seen: Int64?
        public var last: Outcome?
        public init(inForce: Int64? = nil, seen: Int64? = nil, last: Outcome? = nil) {
            self.inForce = inForce
            self.seen = seen
            self.last = last
        }
        enum CodingKeys: String, CodingKey { case inForce = "in_force", seen, last }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inForce = try c.decodeIfPresent(Int64.self, forKey: .inForce, in: revisions)
            seen = try c.decodeIfPresent(Int64.self, forKey: .seen, in: revisions)
            last = try c.decodeIfPresent(Outcome.self, forKey: .last)
        }
    }
}
