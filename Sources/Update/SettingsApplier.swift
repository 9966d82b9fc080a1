import Config
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Root's side of a change of settings from the commune (issue 24, item 7): junction-settings.path
/// starts `junction settings apply` when the daemon hands the offer on. The offer is checked
/// over the installer's file exactly as the daemon will read it; a valid one goes on trial and
/// the recorder is restarted with it; it is kept once the restarted recorder has sealed
/// `[update] health_segments` segments and the commune has accepted a heartbeat, within
/// `[update] health_deadline_seconds`; otherwise the previous settings come back (and the
/// recorder is restarted again). Each revision is tried once; the outcome goes to the commune.
public struct SettingsApplier: Sendable {
    public struct Configuration: Sendable {
        /// The installer's junction.toml as firstboot installed it.
        public var basePath: String
        public var statePath: String
        public var offerPath: String
        public var bootID: String
        public var poll: Duration = .seconds(5)
        public init(basePath: String, statePath: String, offerPath: String, bootID: String) {
            self.basePath = basePath
            self.statePath = statePath
            self.offerPath = offerPath
            self.bootID = bootID
        }
    }

    public enum Outcome: Sendable, Equatable {
        case nothingOffered
        case notTaken(String)
        case refused(revision: Int64, String)
        case applied(revision: Int64)
        case rolledBack(revision: Int64, String)
        case failed(String)
    }

    public let configuration: Configuration
    /// Restarts the recorder (on a box `systemctl --no-block restart junction.service`: it returns
    /// at once, and the check that follows is what waits, bounded).
    let restart: @Sendable () async throws -> Void
    /// One look at the daemon's files; a heartbeat counts only when the commune accepted it
    /// after the given time.
    let observe: @Sendable (_ heartbeatAfter: Timestamp) -> HealthGate.Observation
    /// Seconds on a clock that does not step (the boot clock on a box).
    let seconds: @Sendable () -> Double
    let sleep: @Sendable (Duration) async throws -> Void
    let now: @Sendable () -> Timestamp

    public init(configuration: Configuration, restart: @escaping @Sendable () async throws -> Void,
                observe: @escaping @Sendable (Timestamp) -> HealthGate.Observation, seconds: @escaping @Sendable () -> Double,
                sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
                now: @escaping @Sendable () -> Timestamp = { .now() }) {
        self.configuration = configuration
        self.restart = restart
        self.observe = observe
        self.seconds = seconds
        self.sleep = sleep
        self.now = now
    }

    public static func offerPath(storage: String) -> String { storage + "/settings-offer.json" }

    public func run() async -> Outcome {
        let c = configuration
        // A check that this helper did not finish (stopped, killed) is over: its revision is
        // rolled back before anything else, so a change that broke recording never lingers.
        var left = SettingsState.load(path: c.statePath)
        if let t = left.trial {
            left.trial = nil
            left.last = .init(revision: t.settings.revision, result: .rolledBack,
                              reason: "the check of revision \(t.settings.revision) was cut short; the previous settings are back", at: now())
            do { try left.save(path: c.statePath) } catch { return .failed("\(error)") }
            // In an earlier boot the daemon already came back with the settings in force.
            if t.bootID == c.bootID { try? await restart() }
        }
        let offer: RemoteSettings.Offer
        do {
            guard let o = try StateFile.decode(RemoteSettings.Offer.self, path: c.offerPath, what: "a settings offer") else { return .nothingOffered }
            offer = o
        } catch {
            unlink(c.offerPath)
            return .failed("\(error)")
        }
        // Taken up once: whatever happens next, the path unit must not fire again for it.
        unlink(c.offerPath)
        var state = SettingsState.load(path: c.statePath)
        if let seen = state.seen, offer.revision <= seen {
            return .notTaken("revision \(offer.revision): the box has taken up revision \(seen) already, and takes only newer ones")
        }
        let base: String
        do { base = try ConfigFile.read(path: c.basePath) } catch {
            return .failed("the box's own settings cannot be read (\(error)): fix \(c.basePath) first")
        }
        let baseSHA = SettingsState.sha256(base.utf8)
        let overlay = SettingsOverlay(revision: offer.revision, text: offer.toml)
        let config: JunctionConfiguration
        do {
            config = try JunctionConfiguration.parse(base, file: c.basePath, overlay: overlay)
        } catch {
            state.seen = offer.revision
            state.last = .init(revision: offer.revision, result: .refused, reason: String("\(error)".prefix(RemoteSettings.maxText)), at: now())
            do { try state.save(path: c.statePath) } catch { return .failed("\(error)") }
            return .refused(revision: offer.revision, "\(error)")
        }
        let before = observe(now()).recorderPID
        let started = now()
        state.seen = offer.revision
        state.trial = .init(settings: .init(revision: offer.revision, toml: offer.toml, baseSHA256: baseSHA, at: started), bootID: c.bootID)
        do { try state.save(path: c.statePath) } catch { return .failed("\(error)") }

        var gate = HealthGate(requirement: .init(segments: config.update.healthSegments, deadlineSeconds: config.update.healthDeadlineSeconds),
                              bootID: c.bootID)
        let t0 = seconds()
        var problem: String?
        do { try await restart() } catch { problem = "the recorder could not be restarted with them: \(error)" }
        while problem == nil {
            var o = observe(started)
            // The recorder that ran with the old settings counts for nothing.
            if o.recorderPID == before { o.recorderPID = nil }
            gate.observe(o)
            switch gate.verdict(elapsedSeconds: seconds() - t0, since: "the restart with them") {
            case .passed:
                state.inForce = state.trial?.settings
                state.trial = nil
                state.last = .init(revision: offer.revision, result: .applied, reason: nil, at: now())
                do { try state.save(path: c.statePath) } catch { return .failed("\(error)") }
                return .applied(revision: offer.revision)
            case .failed(let why):
                problem = why
            case .waiting:
                do { try await sleep(c.poll) } catch { problem = "the check was stopped" }
            }
        }
        let why = String("\(problem!); the previous settings are back".prefix(RemoteSettings.maxText))
        state.trial = nil
        state.last = .init(revision: offer.revision, result: .rolledBack, reason: why, at: now())
        let saved: UpdateError?
        do { try state.save(path: c.statePath); saved = nil } catch { saved = error }
        try? await restart()
        if let saved { return .failed("\(why), but \(saved)") }
        return .rolledBack(revision: offer.revision, why)
    }
}
