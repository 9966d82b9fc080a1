import ArgumentParser
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
    /// `junction settings`: the commune's changes of this box's settings (issue 24, item 7).
    struct SettingsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "settings",
            abstract: "The settings the commune sent this box, laid over junction.toml; and root's side of applying them.",
            discussion: """
                The installer's junction.toml (from the card) stays whole; the commune may set a few keys over it
                (camera address, motion, upload cap, ...). A change is kept only once the recorder has recorded and
                reached the commune with it; an edit of junction.toml on the card replaces every change from the commune.
                Examples:
                  junction settings status
                """,
            subcommands: [SettingsStatus.self, SettingsApply.self], defaultSubcommand: SettingsStatus.self)
    }

    struct SettingsStatus: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Which settings are in force, and what became of the commune's last change.")
        @OptionGroup var box: BoxOptions

        func run() throws {
            let config = try box.load()
            let state = SettingsState.load(path: SettingsState.path(storage: config.storage.path))
            print("Settings: " + BoxSettings.summary(state, config: box.config))
            if let r = BoxSettings.inEffect(box.config, storage: config.storage.path) {
                print("Laid over \(box.config) by the commune (revision \(r.revision)):")
                for line in r.text.split(separator: "\n", omittingEmptySubsequences: false) {
                    // The camera's password stays on the box.
                    print("  " + (line.contains("://") ? JunctionConfiguration.Camera.redact(String(line)) : String(line)))
                }
            }
        }
    }

    /// `junction settings apply`, root's side (junction-settings.path starts it when the daemon
    /// hands on the commune's change).
    struct SettingsApply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "apply", abstract: "Check and apply the settings the commune sent (root; junction-settings.service runs it).")
        @OptionGroup var box: BoxOptions
        @Option(help: "Seconds between looks at the recorder (1–60).") var poll = 5
        // --no-block: junction.service says READY only once it records, so a plain restart with a
        // camera address that records nothing would wait for ever (the first QEMU run found it);
        // the check below is what waits, bounded.
        @Option(help: .hidden) var restart: String = "/usr/bin/systemctl --no-block restart junction.service"

        func validate() throws {
            guard (1...60).contains(poll) else { throw ValidationError("--poll must be 1 to 60 seconds") }
        }

        func run() async throws {
            let base = try JunctionConfiguration.load(path: box.config)
            let storage = base.storage.path
            if FileManager.default.fileExists(atPath: storage + "/update") {
                do { try UpdateApplier.ownDirectory(storage + "/update") } catch { throw CLIError("junction settings apply: \(error)") }
            }
            let clock = SystemClock()
            var c = SettingsApplier.Configuration(basePath: box.config, statePath: SettingsState.path(storage: storage),
                                                  offerPath: SettingsApplier.offerPath(storage: storage), bootID: clock.bootID)
            c.poll = .seconds(poll)
            let words = restart.split(separator: " ").map(String.init)
            let statusPath = base.statusPath, uplinkPath = base.uplinkStatusPath
            let applier = SettingsApplier(
                configuration: c,
                restart: {
                    guard let tool = words.first else { return }
                    _ = try Doctor.output(tool, Array(words.dropFirst()))
                },
                observe: { after in UpdateHealth.observe(statusPath: statusPath, uplinkPath: uplinkPath, heartbeatAfter: after) },
                seconds: { Double(clock.monotonicNanos()) / 1e9 })
            print("Checking the settings the commune sent; a valid change restarts the recorder with it and is kept once it records and reaches the commune (at most \(base.update.healthDeadlineSeconds) s).")
            switch await applier.run() {
            case .nothingOffered: print("Nothing sent: \(c.offerPath) is not there.")
            case .notTaken(let why): print("Not applying \(why).")
            case .refused(let r, let why): print("Revision \(r) refused, nothing changed: \(why)")
            case .applied(let r): print("Revision \(r) applied and kept: the recorder records and the commune was reached with it.")
            case .rolledBack(let r, let why): print("Revision \(r) rolled back: \(why).")
            case .failed(let why): throw CLIError("junction settings apply: \(why)")
            }
        }
    }

    /// The box's settings as every command reads them: the installer's file, and the commune's
    /// revision in force laid over it.
    enum BoxSettings {
        static func inEffect(_ path: String, storage: String) -> SettingsOverlay? {
            guard let text = try? ConfigFile.read(path: path) else { return nil }
            let state = SettingsState.load(path: SettingsState.path(storage: storage))
            return state.overlay(baseSHA256: SettingsState.sha256(text.utf8), bootID: SystemClock().bootID)
        }

        /// `base` with the commune's settings laid over it; `base` itself when there are none, or
        /// when they no longer hold over this file (said on stderr: the box records either way).
        static func layered(_ base: JunctionConfiguration, path: String) -> JunctionConfiguration {
            guard let overlay = inEffect(path, storage: base.storage.path) else { return base }
            do {
                return try JunctionConfiguration.load(path: path, overlay: overlay)
            } catch {
                Progress.err("junction: \(overlay.name) no longer hold over \(path) (\(error)); using \(path) alone\n")
                return base
            }
        }

        static func summary(_ state: SettingsState, config path: String) -> String {
            var s = state.inForce.map { "\(path) with the commune's revision \($0.revision) over it (applied \(Output.local($0.at)))" }
                ?? "\(path) alone (no change from the commune in force)"
            if let t = state.trial {
                // A check of an earlier boot is over (settle says so at boot): the settings before are in force.
                s += t.bootID == SystemClock().bootID ? "; revision \(t.settings.revision) is being checked"
                    : "; revision \(t.settings.revision)'s check was cut short by a restart, so the settings before are in force"
            }
            if let l = state.last, l.result != .applied || l.revision != state.inForce?.revision {
                s += "; revision \(l.revision) \(l.result.rawValue.replacing("_", with: " ")) \(Output.local(l.at))\(l.reason.map { ": \($0)" } ?? "")"
            }
            return s
        }
    }
}
