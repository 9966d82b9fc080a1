import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Installs a bundle into the slot that is not running and makes it the next boot's first try;
/// then, at each start, settles what became of it (blessed, still on trial, or rolled back).
/// The order makes every power cut safe: the target's entry goes first (a half-written slot is
/// never bootable), the slot is written and read back, its kernel copied, and only then its
/// entry is written, with tries; the running slot and the data partition are never written.
public enum Installer {
    /// The box as it runs now.
    public struct Box: Sendable {
        public var version: ReleaseVersion
        public var arch: String
        public var bootedSlot: String
        public var cmdline: String
        public var bootID: String
        /// The lowest version the running image allows (`/usr/share/junction/minimum-version`).
        public var minimum: ReleaseVersion?
        public init(version: ReleaseVersion, arch: String, bootedSlot: String, cmdline: String, bootID: String, minimum: ReleaseVersion? = nil) {
            self.minimum = minimum
            self.version = version
            self.arch = arch
            self.bootedSlot = bootedSlot
            self.cmdline = cmdline
            self.bootID = bootID
        }
    }

    /// Where the slots are: the boot partition's `junction/slots`, one line a slot,
    /// `NAME ROOT DEVICE` (`b PARTUUID=1234abcd-03 /dev/disk/by-partuuid/1234abcd-03`).
    public struct Layout: Sendable, Equatable {
        public struct Slot: Sendable, Equatable {
            public var root: String
            public var device: String
        }
        public var esp: String
        public var slots: [String: Slot]

        public init(esp: String, slots: [String: Slot]) {
            self.esp = esp
            self.slots = slots
        }

        public static func read(esp: String) throws(UpdateError) -> Layout {
            let path = esp + "/junction/slots"
            guard let data = FileManager.default.contents(atPath: path), data.count <= 4096 else {
                throw .slot("\(path) is missing: this card has one root slot (an image made before updates); re-flash it with a current image")
            }
            var slots: [String: Slot] = [:]
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
                let w = line.split(separator: " ")
                guard w.count == 3, BootEntries.slots.contains(String(w[0])), w[1].hasPrefix("PARTUUID=") || w[1].hasPrefix("PARTLABEL="),
                      w[2].hasPrefix("/") else { throw .slot("\(path): '\(line.prefix(80))' is not 'NAME ROOT DEVICE'") }
                slots[String(w[0])] = Slot(root: String(w[1]), device: String(w[2]))
            }
            guard slots.count == 2 else { throw .slot("\(path) names \(slots.count) slots, not a and b") }
            return Layout(esp: esp, slots: slots)
        }
    }

    public struct Options: Sendable {
        public var retryFailed = false
        public var force = false
        public var tries = 3
        public var maxRequestBytes = 4 << 20
        public init() {}
    }

    /// The refusals, in the order they are checked; nothing is written before all pass.
    public static func check(_ m: UpdateBundle.Manifest, box: Box, state: UpdateState, options: Options) throws(UpdateError) {
        guard m.arch == box.arch else { throw .wrongArchitecture(bundle: m.arch, box: box.arch) }
        if let minimum = [state.minimum, box.minimum].compactMap({ $0 }).max(), m.version < minimum {
            throw .belowMinimum(version: m.version, minimum: minimum)
        }
        if !options.retryFailed, state.failed.contains(m.version) { throw .failedBefore(m.version) }
        if !options.force, m.version == box.version { throw .alreadyRunning(m.version) }
    }

    public struct Report: Sendable {
        public var bundle: UpdateBundle
        public var slot: String
        public var writer: SlotWriter.Report
        public var bootBytes: Int64
    }

    /// Installs `bundle` (its header already opened and its signature checked) from `fetch`.
    public static func install(_ bundle: UpdateBundle, fetch: SlotWriter.Fetch, layout: Layout, box: Box, statePath: String,
                               options: Options = Options(), pace: @Sendable (Int) async throws -> Void = { _ in },
                               checkpoint: (Int) throws -> Void = { _ in }) async throws -> Report {
        var state = UpdateState.load(path: statePath)
        let m = bundle.manifest
        do {
            try check(m, box: box, state: state, options: options)
        } catch {
            state.last = .init(version: m.version.description, result: .refused, reason: error.description, at: .now())
            try? state.save(path: statePath)
            throw error
        }
        guard let target = BootEntries.slots.first(where: { $0 != box.bootedSlot }), let slot = layout.slots[target],
              layout.slots[box.bootedSlot] != nil else {
            throw UpdateError.slot("the running slot '\(box.bootedSlot)' is not in \(layout.esp)/junction/slots")
        }
        let entries = BootEntries(esp: layout.esp)
        do {
            // A slot on trial is given up before it is overwritten.
            if let a = state.attempt { state.markFailed(a.version); state.attempt = nil }
            try entries.remove(slot: target)
            let writer = try await SlotWriter.write(bundle, fetch: fetch, target: slot.device, current: layout.slots[box.bootedSlot]?.device,
                                                    maxRequestBytes: options.maxRequestBytes, pace: pace, checkpoint: checkpoint)
            let dir = layout.esp + "/junction/" + target
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch { throw UpdateError.io("cannot make \(dir)") }
            var bootBytes: Int64 = 0
            for (i, f) in m.boot.enumerated() {
                bootBytes += try await SlotWriter.writeBootFile(bundle, i, fetch: fetch, to: dir + "/" + f.name, maxRequestBytes: options.maxRequestBytes, pace: pace)
            }
            let generation = max(state.generation, entries.entries().map(\.generation).max() ?? 0) + 1
            try entries.install(slot: target, release: m.version.description, generation: generation,
                                options: BootEntries.options(from: box.cmdline, root: slot.root, slot: target), tries: options.tries)
            state.generation = generation
            state.failed.removeAll { $0 == m.version }
            state.attempt = .init(version: m.version, slot: target, generation: generation, fromVersion: box.version.description, fromSlot: box.bootedSlot,
                                  minimumVersion: m.minimumVersion, installedAt: .now(), installBootID: box.bootID)
            state.last = .init(version: m.version.description, result: .installed, reason: nil, at: .now())
            try state.save(path: statePath)
            return Report(bundle: bundle, slot: target, writer: writer, bootBytes: bootBytes)
        } catch {
            state.last = .init(version: m.version.description, result: .failed, reason: "\(error)", at: .now())
            try? state.save(path: statePath)
            throw error
        }
    }

    public enum Settled: Sendable, Equatable {
        /// No update in progress.
        case steady
        /// Installed, waiting for the reboot into it.
        case waitingForReboot(ReleaseVersion, slot: String)
        /// Running the new slot on trial: the health check decides.
        case onTrial(ReleaseVersion)
        /// The new slot was blessed (its entry lost its counter).
        case blessed(ReleaseVersion)
        /// The box came back on the old slot: the version is marked failed and its entry removed.
        case rolledBack(ReleaseVersion, reason: String)
    }

    /// Where the box stands, as `junction status`, `doctor` and the heartbeat tell it: the release
    /// running, the slot booted (nil on a card with one root slot), each slot's entry, the update
    /// pending, the last result and the versions this box will not try again unless told.
    public static func standing(release: String, arch: String, cmdline: String, esp: String, statePath: String) -> FleetUpdate.Report {
        let state = UpdateState.load(path: statePath)
        let entries = BootEntries(esp: esp).entries()
        let slots = BootEntries.slots.map { name -> FleetUpdate.Slot in
            guard let e = entries.first(where: { $0.slot == name }) else { return .init(name: name, release: nil, state: "empty") }
            return .init(name: name, release: e.release, state: e.isBlessed ? "good" : e.isBad ? "failed" : "trial")
        }
        return FleetUpdate.Report(release: release, arch: arch, booted: BootEntries.bootedSlot(cmdline: cmdline),
                                  slots: entries.isEmpty ? [] : slots, pending: state.attempt?.version.description,
                                  last: state.last.map { .init(version: $0.version, result: $0.result.rawValue, reason: $0.reason, at: $0.at) },
                                  failed: state.failed.suffix(FleetUpdate.maxFailed).map(\.description))
    }

    /// Writes down why the release on trial failed its health check in this boot, so that the
    /// old slot, once the box is back on it, tells the commune the reason and not just "rolled back".
    public static func recordProblem(_ problem: String, statePath: String) throws(UpdateError) {
        var state = UpdateState.load(path: statePath)
        guard state.attempt != nil else { return }
        state.attempt?.problem = String(problem.prefix(500))
        try state.save(path: statePath)
    }

    /// Looks at what the last boot made of an attempt and records it (run at every start).
    public static func settle(box: Box, layout: Layout, statePath: String, now: Timestamp = .now()) throws(UpdateError) -> Settled {
        var state = UpdateState.load(path: statePath)
        guard let a = state.attempt else { return .steady }
        let entries = BootEntries(esp: layout.esp)
        if a.installBootID == box.bootID, box.bootedSlot != a.slot { return .waitingForReboot(a.version, slot: a.slot) }
        if box.bootedSlot == a.slot {
            guard entries.entry(slot: a.slot)?.isBlessed == true else { return .onTrial(a.version) }
            state.minimum = max(state.minimum ?? a.minimumVersion, a.minimumVersion)
            state.attempt = nil
            state.last = .init(version: a.version.description, result: .blessed, reason: nil, at: now)
            try state.save(path: statePath)
            return .blessed(a.version)
        }
        let tried = entries.entry(slot: a.slot)
        let reason = a.problem ?? (tried?.isBad == true ? "slot \(a.slot) used its \(tried?.triesDone ?? 0) tries without passing the health check"
                                                          : "the box started slot \(box.bootedSlot) instead of \(a.slot)")
        try entries.remove(slot: a.slot)
        state.markFailed(a.version)
        state.attempt = nil
        state.last = .init(version: a.version.description, result: .rolledBack, reason: reason, at: now)
        try state.save(path: statePath)
        return .rolledBack(a.version, reason: reason)
    }
}
