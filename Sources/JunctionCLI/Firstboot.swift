import ArgumentParser
import Config
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension JunctionCommand {
    struct Firstboot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take junction.toml from the card's JUNCTION partition (junction-firstboot.service runs this at boot).",
            discussion: """
                Validates the installer's file and installs it as the box's config. Either way it writes
                junction-status.txt beside it, in words an installer can read on a laptop: what is wrong
                and on which line, or that the box took the file. Exit status 1 when the file is unusable
                (the previous config, if any, stays in force).
                Example:
                  junction firstboot --from /boot/firmware/junction.toml --config /etc/junction/junction.toml
                """)

        @Option(help: ArgumentHelp("The installer's file on the FAT partition.", valueName: "file"))
        var from = "/boot/firmware/junction.toml"
        @Option(help: ArgumentHelp("Where the box's config lives.", valueName: "file"))
        var config = "/etc/junction/junction.toml"
        @Option(help: ArgumentHelp("The status file for the installer (default: beside --from).", valueName: "file"))
        var statusFile: String?

        func run() async throws {
            let status = statusFile ?? (String(from[..<(from.lastIndex(of: "/") ?? from.startIndex)]) + "/junction-status.txt")
            let now = Output.local(.now())
            guard access(from, R_OK) == 0 else {
                // Without a file the box keeps what it has (a technician may have used `junction
                // provision`); only a box with no settings at all is a failure.
                let configured = access(config, R_OK) == 0
                let (what, todo) = configured
                    ? ("NOTE: there is no junction.toml on the JUNCTION partition. The box keeps using its current settings.",
                       "What to do: nothing. To change the settings, put a junction.toml on this partition")
                    : ("PROBLEM: there is no junction.toml on the JUNCTION partition. The box cannot record until it has one.",
                       "What to do: put the junction.toml you were given on this partition")
                report(status, "Junction box — \(now)\n\(what)\n\(todo), then put the card back and power on.")
                print("firstboot: no \(from)\(configured ? "; keeping \(config)" : "")")
                if !configured { throw ExitCode(1) }
                return
            }
            let parsed: JunctionConfiguration
            do {
                parsed = try JunctionConfiguration.load(path: from)
            } catch {
                let where_ = error.line.map { "line \($0)" } ?? "the file"
                report(status, """
                    Junction box — \(now)
                    PROBLEM in junction.toml, \(where_)\(error.key.map { " (\($0))" } ?? ""): \(error.message)
                    What to do: open junction.toml on this partition with a text editor, fix \(where_), save, put the card back and power on.
                    The box has NOT taken the new settings\(access(config, R_OK) == 0 ? " and keeps recording with its previous ones" : " and cannot record until they are fixed").
                    """)
                print("firstboot: \(from): \(error)")
                throw ExitCode(1)
            }
            guard let text = FileManager.default.contents(atPath: from) else { throw CLIError("cannot read \(from)") }
            let dir = String(config[..<(config.lastIndex(of: "/") ?? config.startIndex)])
            do {
                if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
                // Every boot reads the card; the config is rewritten only when it changed.
                if FileManager.default.contents(atPath: config) != text {
                    try Provision.write(String(decoding: text, as: UTF8.self), to: config)
                }
                try FileManager.default.createDirectory(atPath: parsed.storage.path, withIntermediateDirectories: true)
                if let pw = getpwnam("junction") {
                    chown(parsed.storage.path, pw.pointee.pw_uid, pw.pointee.pw_gid)
                    chown(config, 0, pw.pointee.pw_gid)
                }
            } catch {
                report(status, "Junction box — \(now)\nPROBLEM: the settings are valid but could not be installed: \(error). The card may be failing.")
                throw CLIError("firstboot: \(error)")
            }
            report(status, """
                Junction box — \(now)
                OK: settings taken from junction.toml. Device \(parsed.device.id), camera \(parsed.camera.redactedURL).
                The box starts recording now. Recordings go to \(parsed.storage.path).
                \(parsed.server == nil ? "No commune server is set: flagged footage stays on the card." : "Flagged footage goes to \(parsed.server!.url).")
                To check it: junction status, or junction doctor, on the box.
                """)
            print("firstboot: installed \(from) as \(config) (device \(parsed.device.id))")
        }

        /// Writes the installer's status file (best effort: a read-only FAT must not stop the boot).
        func report(_ path: String, _ text: String) {
            do { try Provision.write(text + "\n", to: path) } catch { print("firstboot: cannot write \(path): \(error)") }
        }
    }
}
