/// What box and commune say to each other about updates (issue 24), in the heartbeat: the box
/// reports where it stands, the commune's answer may offer it a release. Every field bounded
/// where it is decoded.
public enum FleetUpdate {
    public static let maxText = 500
    public static let maxVersion = 64
    public static let maxFailed = 32
    public static let maxURL = 200
    public static let maxBundleBytes: Int64 = 17 << 30
    public static let releasePath = "/api/v1/releases/"

    /// A slot as the box sees it: `good` (blessed), `trial` (counting tries), `failed` (out of
    /// tries), `empty` (no entry).
    public struct Slot: Sendable, Codable, Equatable {
        public var name: String
        public var release: String?
        public var state: String
        public init(name: String, release: String?, state: String) {
            self.name = name
            self.release = release
            self.state = state
        }
        enum CodingKeys: String, CodingKey { case name, release, state }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name, maxCharacters: 1)
            release = try c.decodeIfPresent(String.self, forKey: .release, maxCharacters: maxVersion)
            state = try c.decode(String.self, forKey: .state, maxCharacters: 16)
            guard ["a", "b"].contains(name), ["good", "trial", "failed", "empty"].contains(state) else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "slot \(name) \(state) is not a slot and its state"))
            }
        }
    }

    public struct Outcome: Sendable, Codable, Equatable {
        public var version: String
        /// installed, blessed, rolled_back, refused, failed.
        public var result: String
        public var reason: String?
        public var at: Timestamp
        public init(version: String, result: String, reason: String?, at: Timestamp) {
            self.version = version
            self.result = result
            self.reason = reason
            self.at = at
        }
        enum CodingKeys: String, CodingKey { case version, result, reason, at }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            version = try c.decode(String.self, forKey: .version, maxCharacters: maxVersion)
            result = try c.decode(String.self, forKey: .result, maxCharacters: 16)
            reason = try c.decodeIfPresent(String.self, forKey: .reason, maxCharacters: maxText)
            at = try c.decode(Timestamp.self, forKey: .at)
        }
    }

    /// The box's side, in every heartbeat of a box that can update.
    public struct Report: Sendable, Codable, Equatable {
        public var release: String
        public var arch: String
        public var booted: String?
        public var slots: [Slot]
        /// The version installed and not yet blessed (waiting for its reboot, or on trial).
        public var pending: String?
        public var last: Outcome?
        public var failed: [String]
        /// A download in progress: its version and how much of what it needs has arrived.
        public var downloading: String?
        public var downloadedBytes: Int64?
        /// Only a box started from an update slot can take a release (a card with one root slot
        /// reports its release but has no other slot to write).
        public var canUpdate: Bool { booted != nil }

        public init(release: String, arch: String, booted: String?, slots: [Slot] = [], pending: String? = nil, last: Outcome? = nil,
                    failed: [String] = [], downloading: String? = nil, downloadedBytes: Int64? = nil) {
            self.release = release
            self.arch = arch
            self.booted = booted
            self.slots = slots
            self.pending = pending
            self.last = last
            self.failed = failed
            self.downloading = downloading
            self.downloadedBytes = downloadedBytes
        }

        enum CodingKeys: String, CodingKey {
            case release, arch, booted, slots, pending, last, failed, downloading
            case downloadedBytes = "downloaded_bytes"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            release = try c.decode(String.self, forKey: .release, maxCharacters: maxVersion)
            arch = try c.decode(String.self, forKey: .arch, maxCharacters: 8)
            booted = try c.decodeIfPresent(String.self, forKey: .booted, maxCharacters: 1)
            slots = try c.decode([Slot].self, forKey: .slots, maxCount: 2)
            pending = try c.decodeIfPresent(String.self, forKey: .pending, maxCharacters: maxVersion)
            last = try c.decodeIfPresent(Outcome.self, forKey: .last)
            failed = try c.decode([String].self, forKey: .failed, maxCount: maxFailed)
            guard failed.allSatisfy({ $0.count <= maxVersion }) else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "a failed version is longer than \(maxVersion)"))
            }
            downloading = try c.decodeIfPresent(String.self, forKey: .downloading, maxCharacters: maxVersion)
            downloadedBytes = try c.decodeIfPresent(Int64.self, forKey: .downloadedBytes, in: 0...maxBundleBytes)
        }
    }

    /// The commune's offer: fetch this bundle (by range, from `path` on the commune) and install it.
    public struct Offer: Sendable, Codable, Equatable {
        public var version: String
        public var arch: String
        public var path: String
        public var bytes: Int64
        public var rollout: String
        /// An operator took the box out of the penalty box: install it even though it failed here before.
        public var retry: Bool?

        public init(version: String, arch: String, path: String, bytes: Int64, rollout: String, retry: Bool? = nil) {
            self.retry = retry
            self.version = version
            self.arch = arch
            self.path = path
            self.bytes = bytes
            self.rollout = rollout
        }

        enum CodingKeys: String, CodingKey { case version, arch, path, bytes, rollout, retry }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            version = try c.decode(String.self, forKey: .version, maxCharacters: maxVersion)
            arch = try c.decode(String.self, forKey: .arch, maxCharacters: 8)
            path = try c.decode(String.self, forKey: .path, maxCharacters: maxURL)
            bytes = try c.decode(Int64.self, forKey: .bytes, in: 1...maxBundleBytes)
            rollout = try c.decode(String.self, forKey: .rollout, maxCharacters: 64)
            retry = try c.decodeIfPresent(Bool.self, forKey: .retry)
            // Only a path on the commune itself, of plain characters: never another host.
            guard path.hasPrefix(releasePath), !path.contains(".."), path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }) else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "an update's path must be under \(releasePath) on the commune"))
            }
        }
    }
}
