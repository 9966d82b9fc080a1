import ArgumentParser
import Config
import Recorder
import Uplink
#if canImport(Glibc)
import Glibc
#endif
import Update
import Synchronization
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JunctionCommand {
    /// `junction update`: the box's side of fleet updates (issue 24): pack a release (on the
    /// build machine), install one into the other slot, say where the box stands.
    struct UpdateCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update",
            abstract: "Install a signed release into the other root slot, or make one (A/B with automatic rollback).",
            discussion: """
                Examples:
                  junction update status
                  junction update install /media/usb/junction-1.2.0-arm64.jub
                  junction update pack --rootfs rootfs.ext4 --kernel vmlinuz --initrd initrd.img \\
                      --version 1.2.0 --arch arm64 --key image/release-key.TEST-ONLY --out junction-1.2.0-arm64.jub
                """,
            subcommands: [UpdateStatus.self, UpdateInstall.self, UpdateApply.self, UpdateSettle.self, UpdateHealth.self, UpdatePack.self, UpdateKeygen.self]
        )
    }

    /// What this box runs, read from the slot it booted.
    struct BoxFacts {
        static let releaseFile = "/usr/share/junction/release-version"
        static let minimumFile = "/usr/share/junction/minimum-version"
        static let keyringFile = "/usr/share/junction/release-keys"

        static var arch: String {
            #if arch(arm64)
            "arm64"
            #else
            "amd64"
            #endif
        }

        static func line(_ path: String) -> String? {
            guard let d = FileManager.default.contents(atPath: path), d.count < 4096 else { return nil }
            let s = String(decoding: d, as: UTF8.self).split(separator: "\n").first.map(String.init)
            return s?.isEmpty == false ? s : nil
        }

        static let esp = "/boot/firmware"

        /// What every chain record says made it (issue 24): `junction 1.2.0 slot b`.
        static var software: String {
            let release = line(releaseFile).flatMap { ReleaseVersion($0)?.description } ?? JunctionVersion.current
            return "junction \(release)" + (BootEntries.bootedSlot(cmdline: line("/proc/cmdline") ?? "").map { " slot \($0)" } ?? "")
        }

        /// Where this box stands (status, doctor, the heartbeat).
        static func standing(storage: String, esp: String = esp) -> FleetUpdate.Report {
            Installer.standing(release: line(releaseFile) ?? JunctionVersion.current, arch: arch, cmdline: line("/proc/cmdline") ?? "",
                               esp: esp, statePath: UpdateState.path(storage: storage))
        }

        /// One line for `junction status`: the release and slot, the other slot, the last update.
        static func summary(_ r: FleetUpdate.Report) -> String {
            var parts = ["\(r.release) (\(r.arch))" + (r.booted.map { ", slot \($0)" } ?? ", one root slot (no A/B updates on this card)")]
            for s in r.slots where s.name != r.booted {
                let how = ["good": "kept", "trial": "on trial", "failed": "failed its tries", "empty": "empty"][s.state] ?? s.state
                parts.append("slot \(s.name): \(s.release.map { "\($0) " } ?? "")\(how)")
            }
            if let p = r.pending { parts.append("update \(p) pending") }
            if let l = r.last {
                let what = ["installed": "installed", "blessed": "kept", "rolled_back": "rolled back", "refused": "refused", "failed": "failed"][l.result] ?? l.result
                parts.append("last update \(l.version) \(what) \(Output.local(l.at))\(l.reason.map { ": \(TerminalText.safe($0, limit: 160))" } ?? "")")
            }
            return parts.joined(separator: "; ")
        }

        static func box(cmdline given: String? = nil, release: String? = nil) throws -> Installer.Box {
            let cmdline = given ?? line("/proc/cmdline") ?? ""
            guard let slot = BootEntries.bootedSlot(cmdline: cmdline) else {
                throw CLIError("this box was not started from an update slot (no junction.slot= on the kernel command line): its card predates A/B updates; re-flash it with a current image")
            }
            let versionText = release ?? line(releaseFile) ?? JunctionVersion.current
            guard let version = ReleaseVersion(versionText) else { throw CLIError("\(releaseFile) says '\(versionText.prefix(40))', not a version") }
            return Installer.Box(version: version, arch: arch, bootedSlot: slot, cmdline: cmdline, bootID: SystemClock().bootID,
                                 minimum: line(minimumFile).flatMap(ReleaseVersion.init))
        }
    }

    struct UpdateOptions: ParsableArguments {
        @Option(help: ArgumentHelp("The boot partition (the FAT drive).", valueName: "dir")) var esp = BoxFacts.esp
    }

    struct UpdateStatus: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "The release running, each slot, and the last update's result.")
        @OptionGroup var box: BoxOptions
        @OptionGroup var update: UpdateOptions

        func run() throws {
            let config = try box.load()
            let state = UpdateState.load(path: UpdateState.path(storage: config.storage.path))
            let running = BoxFacts.line(BoxFacts.releaseFile) ?? JunctionVersion.current
            let booted = BootEntries.bootedSlot(cmdline: BoxFacts.line("/proc/cmdline") ?? "")
            print("Release:  \(running) (\(BoxFacts.arch)), slot \(booted ?? "none: this card has one root slot")")
            for e in BootEntries(esp: update.esp).bootOrder() {
                let how = e.isBlessed ? "good" : e.isBad ? "failed its tries" : "on trial, \(e.triesLeft ?? 0) tries left"
                print("Slot \(e.slot):   \(e.release ?? "?") — \(how)\(e.slot == booted ? " (running)" : "")")
            }
            if let a = state.attempt { print("Update:   \(a.version) in slot \(a.slot), installed \(a.installedAt.rfc3339)\(a.problem.map { "; \($0)" } ?? "")") }
            if let l = state.last { print("Last:     \(l.version) \(l.result.rawValue) at \(l.at.rfc3339)\(l.reason.map { ": \($0)" } ?? "")") }
            if !state.failed.isEmpty { print("Failed:   \(state.failed.map(\.description).joined(separator: ", ")) (not tried again unless told)") }
            if let m = state.minimum { print("Minimum:  \(m)") }
        }
    }

    /// The health check of a release on trial (junction-health.service, before
    /// boot-complete.target): exits 0 once this boot has recorded `[update] health_segments`
    /// segments and had a heartbeat accepted, so systemd-bless-boot keeps the slot; exits 1 at
    /// the deadline (the unit then reboots, and the boot counter moves on towards the old slot).
    /// On a slot not on trial it exits 0 at once.
    struct UpdateHealth: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "health", abstract: "Wait until a release on trial has recorded and reached the commune (run at boot by junction-health.service).")
        @OptionGroup var box: BoxOptions
        @OptionGroup var update: UpdateOptions
        @Option(help: "Seconds between looks at the recorder (1–60).") var poll = 5

        func validate() throws {
            guard (1...60).contains(poll) else { throw ValidationError("--poll must be 1 to 60 seconds") }
        }

        func run() async throws {
            let config = try box.load()
            let statePath = UpdateState.path(storage: config.storage.path)
            guard let booted = BootEntries.bootedSlot(cmdline: BoxFacts.line("/proc/cmdline") ?? "") else {
                print("This card has one root slot: nothing to check.")
                return
            }
            let state = UpdateState.load(path: statePath)
            guard let attempt = state.attempt, attempt.slot == booted,
                  BootEntries(esp: update.esp).entry(slot: booted)?.isBlessed != true else {
                print("Slot \(booted) is not on trial: nothing to check.")
                return
            }
            let clock = SystemClock()
            var gate = HealthGate(requirement: .init(segments: config.update.healthSegments, deadlineSeconds: config.update.healthDeadlineSeconds),
                                  bootID: clock.bootID)
            print("Release \(attempt.version) on trial in slot \(booted): waiting for \(config.update.healthSegments) segments and a heartbeat accepted by the commune, at most \(config.update.healthDeadlineSeconds) s after boot.")
            var said = ""
            while true {
                gate.observe(Self.observe(config))
                let elapsed = Double(clock.monotonicNanos()) / 1e9
                switch gate.verdict(elapsedSeconds: elapsed) {
                case .passed:
                    print("Healthy: \(gate.segments) segments recorded and the commune reached \(Int(elapsed)) s after boot; systemd-bless-boot keeps slot \(booted).")
                    return
                case .failed(let why):
                    try? Installer.recordProblem(why, statePath: statePath)
                    Progress.err("Release \(attempt.version) failed its health check: \(why). The box restarts; after \(config.update.tries) such boots it returns to slot \(attempt.fromSlot ?? "the other slot") by itself.\n")
                    throw ExitCode(1)
                case .waiting(let what):
                    if what != said { print("Waiting: \(what) so far."); said = what }
                    try await Task.sleep(for: .seconds(poll))
                }
            }
        }

        static func observe(_ config: JunctionConfiguration) -> HealthGate.Observation {
            observe(statusPath: config.statusPath, uplinkPath: config.uplinkStatusPath, heartbeatAfter: Timestamp(milliseconds: 0))
        }

        /// One look at what the daemon publishes; a heartbeat counts when the commune accepted
        /// it after `heartbeatAfter` (the settings check counts only those after its restart).
        static func observe(statusPath: String, uplinkPath: String, heartbeatAfter: Timestamp) -> HealthGate.Observation {
            var o = HealthGate.Observation()
            if let d = FileManager.default.contents(atPath: statusPath), d.count <= 1 << 20, let h = try? JSONDecoder().decode(RecorderHealth.self, from: d) {
                o.recorderBootID = h.bootID
                o.recorderPID = h.pid
                o.segmentsWritten = h.segmentsWritten
            }
            if let d = FileManager.default.contents(atPath: uplinkPath), d.count <= 1 << 20, let u = try? JSONDecoder().decode(UplinkHealth.self, from: d) {
                o.uplinkBootID = u.bootID
                o.heartbeatAccepted = u.lastHeartbeat.map { $0 > heartbeatAfter } ?? false
            }
            return o
        }
    }

    struct UpdateInstall: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "install", abstract: "Install a release bundle into the slot not running; it boots next, on trial.")
        @OptionGroup var box: BoxOptions
        @OptionGroup var update: UpdateOptions
        @Argument(help: "The bundle (.jub).") var bundle: String
        @Option(help: ArgumentHelp("The release keys trusted.", valueName: "file")) var keyring = BoxFacts.keyringFile
        @Flag(help: "Install a version that failed on this box before.") var retryFailed = false
        @Flag(help: "Install even the version already running.") var force = false
        // A card image on a build machine (make bench-update): what the box would read from
        // /proc/cmdline and /usr/share/junction/release-version.
        @Option(help: .hidden) var cmdline: String?
        @Option(help: .hidden) var running: String?

        func run() async throws {
            let config = try box.load()
            do {
                let keys = try Keyring.load(path: keyring)
                let layout = try Installer.Layout.read(esp: update.esp)
                let facts = try BoxFacts.box(cmdline: cmdline, release: running)
                let local = try LocalBundle(path: bundle)
                let counted = Mutex<(bytes: Int64, requests: Int)>((0, 0))
                let read: SlotWriter.Fetch = { offset, count in
                    let got = try await local.fetch(offset, count)
                    counted.withLock { $0.bytes += Int64(got.count); $0.requests += 1 }
                    return got
                }
                let opened = try await UpdateBundle.open(size: local.size, keyring: keys, read: read)
                var options = Installer.Options()
                options.retryFailed = retryFailed
                options.force = force
                let r = try await Installer.install(opened, fetch: read, layout: layout, box: facts,
                                                    statePath: UpdateState.path(storage: config.storage.path), options: options)
                print("Installed \(opened.manifest.version) into slot \(r.slot) (signed by \(opened.signedBy)): \(r.writer.kept) blocks kept, \(r.writer.copied) from the running slot, \(r.writer.fetched) read from the bundle")
                let (bytes, requests) = counted.withLock { ($0.bytes, $0.requests) }
                print("Read \(bytes) of the bundle's \(local.size) bytes (\(String(format1: Double(bytes) * 100 / Double(max(1, local.size)))) %) in \(requests) reads: what a box fetches over its link")
                print("It boots next, on trial: it is kept once it has recorded and reached the commune; otherwise the box returns to slot \(facts.bootedSlot) by itself.")
            } catch let e as UpdateError {
                throw CLIError("junction update: \(e)")
            }
        }
    }

    struct UpdatePack: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pack", abstract: "Make a signed release bundle (on the build machine).")
        @Option(help: ArgumentHelp("The release's root filesystem image.", valueName: "file")) var rootfs: String
        @Option(help: ArgumentHelp("Its kernel.", valueName: "file")) var kernel: String
        @Option(help: ArgumentHelp("Its initramfs.", valueName: "file")) var initrd: String
        @Option(help: "The release's version (1.2.0).") var version: String
        @Option(help: "The lowest version a box may run once it has this one (default: this version's own).") var minimum: String?
        @Option(help: "amd64 or arm64.") var arch: String
        @Option(help: ArgumentHelp("The private release key.", valueName: "file")) var key: String
        @Option(help: ArgumentHelp("Where to write the bundle.", valueName: "file")) var out: String
        @Option(help: "Block size in bytes (4096…1048576; the root file system's own, 4096, lets the most be reused).") var blockBytes = 4096
        @Option(help: "Release notes shown at the commune.") var notes: String?

        func run() throws {
            guard let v = ReleaseVersion(version) else { throw ValidationError("--version '\(version)' is not a version like 1.2.0") }
            let m = try minimum.map { s throws -> ReleaseVersion in
                guard let m = ReleaseVersion(s) else { throw ValidationError("--minimum '\(s)' is not a version") }
                return m
            }
            var input = BundleWriter.Input(rootfs: rootfs, kernel: kernel, initrd: initrd, version: v, minimumVersion: m, arch: arch)
            input.blockBytes = blockBytes
            input.notes = notes
            do {
                let s = try BundleWriter.write(input, key: try ReleaseKey.load(path: key), to: out)
                print("\(out): \(s.manifest.version) for \(s.manifest.arch), \(s.bytes) bytes; rootfs \(s.manifest.rootfs.bytes) bytes in \(s.manifest.rootfs.blocks) blocks (\(s.zeroBlocks) zero, \(s.rawBlocks) stored raw)")
            } catch let e as UpdateError {
                throw CLIError("junction update pack: \(e)")
            }
        }
    }

    struct UpdateKeygen: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "keygen", abstract: "Make a release key pair (keep the private one off every box).")
        @Option(help: ArgumentHelp("Where to write the private key (0600).", valueName: "file")) var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else { throw CLIError("\(out) exists: a release key is never overwritten") }
            let key = ReleaseKey(.init())
            guard FileManager.default.createFile(atPath: out, contents: Data(key.text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw CLIError("cannot write \(out)")
            }
            print(key.publicText, terminator: "")
        }
    }
}
