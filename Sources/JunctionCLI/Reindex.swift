import ArgumentParser
import Config
import Ring
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JunctionCommand {
    struct Reindex: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the index from the segment files alone (stop the recorder first).",
            discussion: """
                Keeps flag and upload marks of files the old index knew, and restores flags from the
                flag journal (flags.jsonl). A file whose size or SHA-256 differs from what was
                recorded when it was written is damaged: it is moved, untouched, to quarantine/ and
                named. An index that cannot be opened at all is moved aside as
                index.sqlite.broken-<time> and a new one built.
                Example:
                  systemctl stop junction && junction reindex && systemctl start junction
                """)

        @OptionGroup var options: BoxOptions
        @Flag(help: "Rebuild even though the recorder seems to be running.") var force = false

        func run() async throws {
            let config = try options.load()
            if DaemonState.read(config).running && !force {
                throw CLIError("the recorder is running; stop it first (systemctl stop junction), or pass --force")
            }
            let ringConfig = config.ringConfiguration
            let (ring, replaced) = try await config.openReplacingCorruptIndex(checkIntegrity: false)
            if let replaced { print("The index could not be opened (\(replaced.problem)); moved it to \(replaced.keptAs).") }
            print("Rebuilding the index from \(ringConfig.segmentsRoot) …")
            let (count, findings) = try await ring.reindex()
            let flags = (try? await ring.flags().count) ?? 0
            await ring.close()
            for f in findings { print("  \(f.kind.rawValue): \(f.path): \(f.detail)") }
            let damaged = findings.filter { $0.kind == .quarantined }
            if damaged.isEmpty {
                print("✔ \(count) segments indexed, \(flags) flags kept.")
            } else {
                print("⚠ \(count) segments indexed, \(flags) flags kept, and \(damaged.count) DAMAGED file\(damaged.count == 1 ? "" : "s") moved to \(config.storage.path)/quarantine/ (kept untouched, not in the ring).")
                print("  The card may be failing: run junction doctor, copy quarantine/ off for the case file, and replace the card.")
                throw ExitCode(1)
            }
        }
    }
}
