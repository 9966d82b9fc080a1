import Logging
import Ring
import Synchronization
import Update
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The root helper's job (`junction update apply`, started by junction-update.path when the
/// daemon hands an offer on): fetch the offered release by range, write it into the other slot
/// (only the blocks the running slot lacks travel), and reboot into it once no flagged footage
/// waits to go up. Everything the daemon can write (the offer) is read bounded and checked
/// again here; what root writes lives in a root-owned folder (`update/`), never in one the
/// unprivileged daemon could swap for a link.
public struct UpdateApplier: Sendable {
    public struct Configuration: Sendable {
        public var offerPath: String
        /// The root-owned folder: state.json (the install's record) and progress.json.
        public var stateDirectory: String
        public var layout: Installer.Layout
        public var box: Installer.Box
        public var release: String
        public var tries = 3
        /// How long the reboot waits for the flagged footage in flight (then it reboots anyway:
        /// uploads resume from the ring after the boot).
        public var rebootWait: Duration = .seconds(6 * 3600)
        public var poll: Duration = .seconds(10)
        /// The download's: the commune's address and the box's token, request size, retries.
        public var agent: UpdateAgent.Configuration

        public init(baseURL: String, token: Secret?, offerPath: String, stateDirectory: String, layout: Installer.Layout,
                    box: Installer.Box, release: String) {
            self.offerPath = offerPath
            self.stateDirectory = stateDirectory
            self.layout = layout
            self.box = box
            self.release = release
            agent = .init(baseURL: baseURL, token: token)
        }

        public var statePath: String { stateDirectory + "/state.json" }
        public var progressPath: String { stateDirectory + "/progress.json" }
    }

    public enum Outcome: Sendable, Equatable {
        case nothingOffered
        /// The offer is not for this box now (its own release, pending, failed before, another architecture).
        case notTaken(String)
        /// With what travelled: bytes fetched of the bundle's, in how many requests, and how the
        /// slot's blocks were made (kept as they were, copied from the running slot, fetched).
        case installed(version: String, slot: String, rebooted: Bool, fetched: Fetched)
        case failed(String)
    }

    public struct Fetched: Sendable, Equatable {
        public var bytes: Int64
        public var bundleBytes: Int64
        public var requests: Int
        /// How the slot writer made the slot's blocks.
        public var slot = SlotWriter.Report()
        public var kept: Int { slot.kept }
        public var zero: Int { slot.zero }
        public var copied: Int { slot.copied }
        public var fetchedBlocks: Int { slot.fetched }
        public var percent: Double { Double(bytes) * 100 / Double(max(1, bundleBytes)) }
    }

    public let configuration: Configuration
    let transport: any TusTransport
    let keyring: Keyring
    let limiter: RateLimiter?
    let evidenceWaiting: @Sendable () async -> Bool
    let reboot: @Sendable () async throws -> Void
    let logger: Logger

    public init(configuration: Configuration, transport: any TusTransport, keyring: Keyring, limiter: RateLimiter? = nil,
                evidenceWaiting: @escaping @Sendable () async -> Bool, reboot: @escaping @Sendable () async throws -> Void, logger: Logger) {
        self.configuration = configuration
        self.transport = transport
        self.keyring = keyring
        self.limiter = limiter
        self.evidenceWaiting = evidenceWaiting
        self.reboot = reboot
        self.logger = logger
    }

    /// The offer file: at most 64 KiB, not a link, decoded with the heartbeat's own bounds.
    public static func readOffer(path: String) throws(UpdateError) -> FleetUpdate.Offer? {
        try StateFile.decode(FleetUpdate.Offer.self, path: path, what: "an offer")
    }

    /// The root-owned folder for what root writes: made 0755 if missing; refused when it is a
    /// link or someone else's (the daemon owns the storage folder it sits in).
    public static func ownDirectory(_ path: String) throws(UpdateError) {
        if mkdir(path, 0o755) != 0, errno != EEXIST { throw .io("cannot make \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard lstat(path, &st) == 0 else { throw .io("cannot look at \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid() else {
            throw .io("\(path) is not a folder of the user running the update (uid \(geteuid())): remove it and run the update again")
        }
    }

    public func standing() -> FleetUpdate.Report {
        Installer.standing(release: configuration.release, arch: configuration.box.arch, cmdline: configuration.box.cmdline,
                           esp: configuration.layout.esp, statePath: configuration.statePath)
    }

    public func run() async -> Outcome {
        let c = configuration
        let offer: FleetUpdate.Offer
        do {
            try Self.ownDirectory(c.stateDirectory)
            guard let o = try Self.readOffer(path: c.offerPath) else { return .nothingOffered }
            offer = o
        } catch {
            unlink(c.offerPath)
            return .failed("\(error)")
        }
        let now = standing()
        guard UpdateAgent.wanted(offer, standing: now) else {
            unlink(c.offerPath)
            let why = !now.canUpdate ? "this card has one root slot"
                : offer.arch != now.arch ? "it is for \(offer.arch), this box is \(now.arch)"
                : offer.version == now.release ? "the box runs it already"
                : offer.version == now.pending ? "it is installed already and boots next"
                : "it failed on this box before (the commune's retry brings it back)"
            return .notTaken("\(offer.version): \(why)")
        }
        let progressPath = c.progressPath
        let last = Mutex<ContinuousClock.Instant?>(nil)
        let written = Mutex<SlotWriter.Report?>(nil)
        let agent = UpdateAgent(configuration: c.agent, transport: transport, keyring: keyring, limiter: limiter,
                                evidenceWaiting: evidenceWaiting, standing: { [self] in standing() },
                                install: { [c] bundle, offer, fetch, pace in
                                    var options = Installer.Options()
                                    options.tries = c.tries
                                    options.retryFailed = offer.retry == true
                                    let r = try await Installer.install(bundle, fetch: fetch, layout: c.layout, box: c.box, statePath: c.statePath,
                                                                        options: options, pace: pace)
                                    written.withLock { $0 = r.writer }
                                }, logger: logger)
        await agent.onProgress { version, bytes in
            let t = ContinuousClock.now
            let due = last.withLock { l -> Bool in
                guard l.map({ t - $0 >= .seconds(2) }) ?? true else { return false }
                l = t
                return true
            }
            guard due, let data = try? JSONEncoder().encode(UpdateProgress(version: version, bytes: bytes)) else { return }
            try? FileSystem.writeAtomically(Array(data), to: progressPath)
        }
        await agent.answered(offer)
        await agent.settle()
        unlink(c.offerPath)
        unlink(progressPath)
        if let problem = await agent.lastProblem { return .failed(problem) }
        guard let slot = standing().slots.first(where: { $0.release == offer.version && $0.state == "trial" })?.name else {
            return .failed("\(offer.version) was not installed")
        }
        let fetched = Fetched(bytes: await agent.bytesFetched, bundleBytes: offer.bytes, requests: await agent.requests,
                              slot: written.withLock { $0 } ?? SlotWriter.Report())
        logger.notice("update: \(offer.version) fetched \(fetched.bytes) of \(fetched.bundleBytes) bytes in \(fetched.requests) requests; slot blocks kept \(fetched.kept), zero \(fetched.zero), copied \(fetched.copied), fetched \(fetched.fetchedBlocks)")
        // Evidence first, for the reboot too: it waits (bounded) for the flagged footage in flight.
        let started = ContinuousClock.now
        while await evidenceWaiting(), ContinuousClock.now - started < c.rebootWait {
            do { try await Task.sleep(for: c.poll) } catch { return .installed(version: offer.version, slot: slot, rebooted: false, fetched: fetched) }
        }
        do {
            try await reboot()
        } catch {
            logger.error("update: the reboot into \(offer.version) failed", metadata: ["why": "\(error)"])
            return .installed(version: offer.version, slot: slot, rebooted: false, fetched: fetched)
        }
        return .installed(version: offer.version, slot: slot, rebooted: true, fetched: fetched)
    }
}
