import Logging
import Ring
import Update
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the heartbeat needs of the commune's settings (issue 24, item 7).
public protocol SettingsChannel: Sendable {
    func report() async -> RemoteSettings.Report
    func answered(_ offer: RemoteSettings.Offer?) async
}

/// The daemon's side of a change of settings: like a release, it is only passed on. A revision
/// newer than any the box has taken up is written to `offerPath` (the storage's
/// `settings-offer.json`), which junction-settings.path watches; root checks it, applies it and
/// writes the outcome into `update/settings.json`, which this reads back for the report.
public struct SettingsHandoff: SettingsChannel {
    public let offerPath: String
    public let statePath: String
    let logger: Logger

    public init(storage: String, logger: Logger) {
        offerPath = SettingsApplier.offerPath(storage: storage)
        statePath = SettingsState.path(storage: storage)
        self.logger = logger
    }

    public func report() async -> RemoteSettings.Report {
        SettingsState.load(path: statePath).report
    }

    public func answered(_ offer: RemoteSettings.Offer?) async {
        guard let offer else { return }
        if let seen = SettingsState.load(path: statePath).seen, offer.revision <= seen { return }
        do {
            guard try UpdateHandoff.handOn(offer, to: offerPath) else { return }
            logger.notice("settings: the commune sends revision \(offer.revision); junction-settings.service checks and applies it")
        } catch {
            logger.error("settings: cannot hand revision \(offer.revision) on", metadata: ["path": "\(offerPath)", "why": "\(error)"])
        }
    }
}
