import ArgumentParser
import Logging
import Config
import Recorder
import Update
import Uplink
import Wire
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JunctionCommand {
    /// `junction update apply`, root's side of an over-the-air update: junction-update.path
    /// starts it when the daemon (unprivileged, and unable to write a slot or the boot partition)
    /// hands on the commune's offer. It fetches the release by range, writes the other slot and
    /// reboots into it once no flagged footage waits to go up.
    struct UpdateApply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "apply", abstract: "Fetch and install the release the commune offered (root; junction-update.service runs it).")
        @OptionGroup var box: BoxOptions
        @OptionGroup var update: UpdateOptions
        @Option(help: ArgumentHelp("The release keys trusted.", valueName: "file")) var keyring = BoxFacts.keyringFile
        @Flag(help: "Install, but do not reboot into it.") var noReboot = false
        @Option(help: "Longest wait, in seconds, for flagged footage in flight before the reboot (0–86400).") var rebootWait = 21600
        @Option(help: .hidden) var cmdline: String?
        @Option(help: .hidden) var running: String?

        func validate() throws {
            guard (0...86400).contains(rebootWait) else { throw ValidationError("--reboot-wait must be 0 to 86400 seconds") }
        }

        func run() async throws {
            let config = try box.load()
            guard let server = config.server else {
                throw CLIError("junction update apply: no [server] in \(box.config): updates come from the commune")
            }
            let storage = config.storage.path
            let facts = try BoxFacts.box(cmdline: cmdline, release: running)
            let applier: UpdateApplier
            let transport: HTTPTransport
            do {
                let layout = try Installer.Layout.read(esp: update.esp)
                // Everything that can fail comes before the HTTP client, which must be shut down.
                let keys = try Keyring.load(path: keyring)
                var c = UpdateApplier.Configuration(baseURL: server.url, token: server.token, offerPath: UpdateHandoff.offerPath(storage: storage),
                                                    stateDirectory: storage + "/update", layout: layout, box: facts,
                                                    release: running ?? BoxFacts.line(BoxFacts.releaseFile) ?? JunctionVersion.current)
                c.tries = config.update.tries
                c.rebootWait = .seconds(rebootWait)
                let limiter = config.upload.maxKbps > 0 ? RateLimiter(kbps: config.upload.maxKbps) : nil
                transport = HTTPTransport(client: try HTTPTransport.makeClient(caFile: server.caFile))
                let uplinkPath = config.uplinkStatusPath, bootID = facts.bootID, noReboot = self.noReboot
                applier = UpdateApplier(configuration: c, transport: transport, keyring: keys, limiter: limiter,
                                        evidenceWaiting: { UplinkMonitor.evidenceWaiting(path: uplinkPath, bootID: bootID) },
                                        reboot: {
                                            guard !noReboot else { return }
                                            print("Rebooting into the new slot (systemctl reboot).")
                                            _ = try Doctor.output("/usr/bin/systemctl", ["reboot"])
                                        }, logger: { var l = Logger(label: "junction.update"); l.logLevel = .notice; return l }())
            } catch let e as UpdateError {
                throw CLIError("junction update apply: \(e)")
            }
            let outcome = await applier.run()
            // The HTTP client must be shut down before it goes (async-http-client traps otherwise).
            try? await transport.client.shutdown()
            switch outcome {
            case .nothingOffered:
                print("Nothing offered: \(UpdateHandoff.offerPath(storage: storage)) is not there.")
            case .notTaken(let why):
                print("Not installing \(why).")
            case .installed(let version, let slot, let rebooted, let f):
                print("Installed \(version) into slot \(slot); it boots next, on trial\(rebooted || noReboot ? "" : " (the reboot did not happen: run systemctl reboot)").")
                print("Fetched \(f.bytes) of the bundle's \(f.bundleBytes) bytes (\(String(format1: f.percent)) %) in \(f.requests) requests; blocks kept \(f.kept), zero \(f.zero), copied from the running slot \(f.copied), fetched \(f.fetchedBlocks).")
            case .failed(let why):
                throw CLIError("junction update apply: \(why). The box keeps running its release; the commune's next offer tries again.")
            }
        }
    }

    /// `junction update settle`, at every boot (junction-update-settle.service, root, after
    /// systemd-bless-boot): records what became of an install. A slot blessed by its health check
    /// is kept; a box back on its old slot writes the rollback, with its reason, and never tries
    /// that release again unless the commune's operator says so.
    struct UpdateSettle: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "settle", abstract: "Record what became of the last install (kept or rolled back); run at boot.")
        @OptionGroup var box: BoxOptions
        @OptionGroup var update: UpdateOptions
        @Option(help: .hidden) var cmdline: String?
        @Option(help: .hidden) var running: String?

        func run() throws {
            let config = try box.load()
            settleSettings(config)
            let given = cmdline ?? BoxFacts.line("/proc/cmdline") ?? ""
            guard BootEntries.bootedSlot(cmdline: given) != nil else {
                print("This card has one root slot: nothing to settle.")
                return
            }
            let facts = try BoxFacts.box(cmdline: given, release: running)
            do {
                let statePath = UpdateState.path(storage: config.storage.path)
                if FileManager.default.fileExists(atPath: config.storage.path + "/update") {
                    try UpdateApplier.ownDirectory(config.storage.path + "/update")
                }
                switch try Installer.settle(box: facts, layout: try Installer.Layout.read(esp: update.esp), statePath: statePath) {
                case .steady: print("No update in progress: slot \(facts.bootedSlot) runs \(facts.version).")
                case .waitingForReboot(let v, let slot): print("\(v) is installed in slot \(slot) and boots next.")
                case .onTrial(let v): print("\(v) is on trial in slot \(facts.bootedSlot): junction-health.service decides.")
                case .blessed(let v): print("\(v) passed its health check: slot \(facts.bootedSlot) is kept.")
                case .rolledBack(let v, let reason): print("\(v) was rolled back (\(reason)); the box runs \(facts.version) in slot \(facts.bootedSlot) and will not try \(v) again unless told.")
                }
            } catch {
                throw CLIError("junction update settle: \(error)")
            }
        }

        /// The commune's settings (issue 24, item 7), first and on any card: a check cut short by
        /// a restart is rolled back, a change laid over a junction.toml the installer has edited
        /// since is superseded; the heartbeat reports it.
        func settleSettings(_ config: JunctionConfiguration) {
            let path = SettingsState.path(storage: config.storage.path)
            guard FileManager.default.fileExists(atPath: path) else { return }
            guard let text = try? ConfigFile.read(path: box.config) else { return }
            var state = SettingsState.load(path: path)
            let said = state.settle(baseSHA256: SettingsState.sha256(text.utf8), bootID: SystemClock().bootID)
            guard !said.isEmpty else { return }
            do { try state.save(path: path) } catch { Progress.err("junction update settle: \(error)\n") }
            for s in said { print("Settings: \(s).") }
        }
    }
}
