import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What the box remembers of updates, on the data partition (which no update touches):
/// `<storage>/update/state.json`, written through a temporary file, a rename and a directory
/// sync. A file that cannot be read is kept aside (`state.json.unreadable`) and the box goes on
/// with an empty state: refusing every update forever would be worse than forgetting a failure.
public struct UpdateState: Sendable, Equatable, Codable {
    public struct Attempt: Sendable, Equatable, Codable {
        public var version: ReleaseVersion
        public var slot: String
        public var generation: Int
        public var fromVersion: String?
        public var fromSlot: String?
        public var minimumVersion: ReleaseVersion
        public var installedAt: Timestamp
        /// The boot it was installed in: while that boot lasts, the box has not tried it yet.
        public var installBootID: String?
        /// The health check's last words on this attempt (what it waited for and did not see).
        public var problem: String?
        enum CodingKeys: String, CodingKey {
            case version, slot, generation, problem
            case installBootID = "install_boot_id"
            case fromVersion = "from_version", fromSlot = "from_slot", minimumVersion = "minimum_version", installedAt = "installed_at"
        }
    }

    public enum Result: String, Sendable, Codable { case installed, blessed, rolledBack = "rolled_back", refused, failed }

    public struct Outcome: Sendable, Equatable, Codable {
        public var version: String
        public var result: Result
        public var reason: String?
        public var at: Timestamp
        public init(version: String, result: Result, reason: String?, at: Timestamp) {
            self.version = version
            self.result = result
            self.reason = reason
            self.at = at
        }
    }

    public var generation = 0
    public var minimum: ReleaseVersion?
    public var failed: [ReleaseVersion] = []
    public var attempt: Attempt?
    public var last: Outcome?

    public static let maxFailed = 32

    public init() {}

    public mutating func markFailed(_ v: ReleaseVersion) {
        failed.removeAll { $0 == v }
        failed.append(v)
        if failed.count > Self.maxFailed { failed.removeFirst(failed.count - Self.maxFailed) }
    }

    public static func path(storage: String) -> String { storage + "/update/state.json" }

    public static func load(path: String) -> UpdateState {
        guard let data = FileManager.default.contents(atPath: path) else { return UpdateState() }
        if data.count <= 64 << 10, let s = try? JSONDecoder().decode(UpdateState.self, from: data) { return s }
        _ = rename(path, path + ".unreadable")
        return UpdateState()
    }

    public func save(path: String) throws(UpdateError) {
        try StateFile.write(self, to: path, what: "the update state")
    }
}
