import Logging
import Ring
import Update
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the heartbeat needs of fleet updates: the report it carries, and where the answer's
/// offer goes.
public protocol UpdateChannel: Sendable {
    func report() async -> FleetUpdate.Report
    func answered(_ offer: FleetUpdate.Offer?) async
}

/// The daemon's side of an update on a box (issue 24). The daemon runs unprivileged and cannot
/// write the boot partition or a root slot; it only passes the commune's offer on. An offer the
/// box takes is written to `offerPath` (the storage's `update-offer.json`), which
/// junction-update.path watches: the root helper (`junction update apply`) downloads and
/// installs it and writes how far it got to `progressPath`, which this reads back for the
/// heartbeat's report.
public struct UpdateHandoff: UpdateChannel {
    public let offerPath: String
    public let progressPath: String
    let standing: @Sendable () -> FleetUpdate.Report
    let logger: Logger

    public init(offerPath: String, progressPath: String, standing: @escaping @Sendable () -> FleetUpdate.Report, logger: Logger) {
        self.offerPath = offerPath
        self.progressPath = progressPath
        self.standing = standing
        self.logger = logger
    }

    public static func offerPath(storage: String) -> String { storage + "/update-offer.json" }

    public func report() async -> FleetUpdate.Report {
        var r = standing()
        if let p = UpdateProgress.load(path: progressPath), p.version != r.release, p.version != r.pending {
            r.downloading = p.version
            r.downloadedBytes = p.bytes
        }
        return r
    }

    public func answered(_ offer: FleetUpdate.Offer?) async {
        guard let offer, UpdateAgent.wanted(offer, standing: standing()) else { return }
        do {
            if try Self.handOn(offer, to: offerPath) {
                logger.notice("update: the commune offers \(offer.version); junction-update.service fetches and installs it")
            }
        } catch {
            logger.error("update: cannot hand the offer of \(offer.version) on", metadata: ["path": "\(offerPath)", "why": "\(error)"])
        }
    }

    /// Writes `value` for root's path unit; false when the file already holds it. Sorted keys:
    /// the same offer makes the same bytes (the encoder's key order varies, and the file was
    /// rewritten at nearly every heartbeat); the same offer again (every heartbeat repeats it)
    /// leaves the file alone, so the path unit does not fire for nothing.
    static func handOn<T: Encodable>(_ value: T, to path: String) throws -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(value)
        if let old = FileManager.default.contents(atPath: path), old == data { return false }
        try FileSystem.writeAtomically(Array(data), to: path, mode: 0o644, durable: false)
        return true
    }
}

/// How far the root helper got with a download (`update/progress.json`, root's, read by the daemon).
public struct UpdateProgress: Codable, Sendable, Equatable {
    public var version: String
    public var bytes: Int64
    public var at: Timestamp

    public init(version: String, bytes: Int64, at: Timestamp = .now()) {
        self.version = version
        self.bytes = bytes
        self.at = at
    }

    public static func path(storage: String) -> String { storage + "/update/progress.json" }

    public static func load(path: String) -> UpdateProgress? {
        guard let d = FileManager.default.contents(atPath: path), d.count <= 4096 else { return nil }
        return try? JSONDecoder().decode(UpdateProgress.self, from: d)
    }
}
