import Config
import SystemCrypto
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// What the box keeps of the commune's settings (issue 24, item 7), on the data partition
/// beside the update state: `<storage>/update/settings.json`, root's.
///
/// The installer's junction.toml stays whole; the settings in force are that file with the
/// revision `inForce` laid over it. Each revision remembers the SHA-256 of the file it was
/// laid over: once the installer edits junction.toml on the card (firstboot installs the new
/// file), the hashes differ and the card's file is in force alone. A revision on `trial` is
/// used only in the boot that started it: after a power cut in its check the box comes back
/// with `inForce`, and settle reports the trial rolled back.
public struct SettingsState: Sendable, Equatable, Codable {
    public struct Revision: Sendable, Equatable, Codable {
        public var revision: Int64
        public var toml: String
        public var baseSHA256: String
        public var at: Timestamp
        public init(revision: Int64, toml: String, baseSHA256: String, at: Timestamp) {
            self.revision = revision
            self.toml = toml
            self.baseSHA256 = baseSHA256
            self.at = at
        }
        public var overlay: SettingsOverlay { SettingsOverlay(revision: revision, text: toml) }
        enum CodingKeys: String, CodingKey { case revision, toml, baseSHA256 = "base_sha256", at }
    }

    public struct Trial: Sendable, Equatable, Codable {
        public var settings: Revision
        public var bootID: String
        public init(settings: Revision, bootID: String) {
            self.settings = settings
            self.bootID = bootID
        }
        enum CodingKeys: String, CodingKey { case settings, bootID = "boot_id" }
    }

    public var inForce: Revision?
    public var trial: Trial?
    /// The newest revision the box has taken up (applied, refused or rolled back): it takes
    /// only newer ones, so each is tried once.
    public var seen: Int64?
    public var last: RemoteSettings.Outcome?

    public init(inForce: Revision? = nil, trial: Trial? = nil, seen: Int64? = nil, last: RemoteSettings.Outcome? = nil) {
        self.inForce = inForce
        self.trial = trial
        self.seen = seen
        self.last = last
    }

    enum CodingKeys: String, CodingKey { case inForce = "in_force", trial, seen, last }

    public static func path(storage: String) -> String { storage + "/update/settings.json" }

    /// The state, or an empty one when there is none. An unreadable file is set aside
    /// (`settings.json.unreadable`) and the installer's file alone is in force: a bad state
    /// must never keep the box from recording.
    public static func load(path: String) -> SettingsState {
        do {
            return try StateFile.decode(SettingsState.self, path: path, what: "the settings state") ?? SettingsState()
        } catch {
            _ = rename(path, path + ".unreadable")
            return SettingsState()
        }
    }

    public func save(path: String) throws(UpdateError) {
        try StateFile.write(self, to: path, what: "the settings state")
    }

    public static func sha256(_ bytes: some Sequence<UInt8>) -> String { hex(SHA256.hash(data: Array(bytes))) }

    /// The commune's settings to lay over the installer's file (whose SHA-256 is `baseSHA256`)
    /// in the boot `bootID`: the revision on trial in this boot, else the one in force; nil when
    /// none, or when the installer's file changed since it was laid over.
    public func overlay(baseSHA256: String, bootID: String) -> SettingsOverlay? {
        if let t = trial, t.bootID == bootID { return t.settings.baseSHA256 == baseSHA256 ? t.settings.overlay : nil }
        guard let r = inForce, r.baseSHA256 == baseSHA256 else { return nil }
        return r.overlay
    }

    /// At boot (`junction update settle`, root): a trial of an earlier boot is over, rolled
    /// back; a revision laid over an installer's file that has changed since is superseded.
    /// Returns what changed, in words, for the journal.
    public mutating func settle(baseSHA256: String, bootID: String, now: Timestamp = .now()) -> [String] {
        var said: [String] = []
        if let t = trial, t.bootID != bootID {
            trial = nil
            let why = "the box restarted before revision \(t.settings.revision) had recorded and reached the commune; the previous settings are back"
            last = .init(revision: t.settings.revision, result: .rolledBack, reason: why, at: now)
            said.append(why)
        }
        if let r = inForce, r.baseSHA256 != baseSHA256 {
            inForce = nil
            let why = "junction.toml on the card was edited after revision \(r.revision) was applied: the card's file is in force alone; send the settings again to lay them over it"
            last = .init(revision: r.revision, result: .superseded, reason: why, at: now)
            said.append(why)
        }
        return said
    }

    public var report: RemoteSettings.Report {
        RemoteSettings.Report(inForce: inForce?.revision, seen: seen, last: last)
    }
}
