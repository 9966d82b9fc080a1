import ArgumentParser
import Commune
import Config
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `commune settings`: change a box's settings from the commune (issue 24, item 7).
extension CommuneCommand {
    struct SettingsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "settings",
            abstract: "Send a box a change of its settings (camera address, motion, upload cap, ...), and see what became of it.",
            discussion: """
                The file holds only the keys that change, as in junction.toml, e.g.
                  [upload]
                  max_kbps = 512
                The box lays them over its installer's junction.toml, restarts its recorder with them and keeps them
                only once it records and reaches the commune; otherwise its previous settings come back. An edit of
                junction.toml on the box's card replaces every change sent from here.
                Examples:
                  commune settings send thaithuy-0042 upload-cap.toml --by chief
                  commune settings list thaithuy-0042
                """,
            subcommands: [Send.self, List.self], defaultSubcommand: List.self)

        struct Send: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Send the keys in FILE to the box on its next heartbeat.")
            @OptionGroup var options: DataOptions
            @Argument(help: "The box's device id.") var device: String
            @Argument(help: ArgumentHelp("A TOML file of the keys to set.", valueName: "file")) var file: String
            @Option(help: "Who sends it (kept in the audit).") var by: String?

            func run() async throws {
                let text: String
                do { text = try ConfigFile.read(path: file) } catch { throw ValidationError("\(error)") }
                let revision: Int64
                do {
                    revision = try await options.withCatalog { try await $0.sendSettings(device: device, toml: text, by: by) }
                } catch let e as Catalog.SettingsError {
                    throw ValidationError("\(e)")
                }
                print("Revision \(revision) of \(device)'s settings goes out on its next heartbeat; commune settings list \(device) shows what became of it.")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Every change sent to a box, newest first, and what became of it.")
            @OptionGroup var options: DataOptions
            @Argument(help: "The box's device id.") var device: String
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                let (revisions, report) = try await options.withCatalog { c in
                    (try await c.settingsRevisions(device: device), try await c.settingsReport(device: device))
                }
                if json {
                    struct Row: Encodable { let revisions: [Catalog.SettingsRevision]; let report: RemoteSettings.Report? }
                    print(try jsonText(Row(revisions: revisions, report: report)))
                    return
                }
                if let report {
                    print("In force on \(device): \(report.inForce.map { "revision \($0) over its junction.toml" } ?? "its junction.toml alone")")
                } else {
                    print("\(device) has not reported its settings yet (a box before this release, or not heard from).")
                }
                if revisions.isEmpty { print("Nothing sent yet: commune settings send \(device) FILE") }
                for r in revisions {
                    let what = r.result.map { "\($0.rawValue.replacingOccurrences(of: "_", with: " ")) \(r.resultAt?.rfc3339 ?? "")" } ?? "waiting for the box"
                    print("Revision \(r.revision)  sent \(r.sent.rfc3339)\(r.sentBy.map { " by \($0)" } ?? "")  \(what)\(r.reason.map { ": \($0)" } ?? "")")
                    for line in r.toml.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                        print("    " + (line.contains("://") ? JunctionConfiguration.Camera.redact(String(line)) : String(line)))
                    }
                }
            }
        }
    }
}
