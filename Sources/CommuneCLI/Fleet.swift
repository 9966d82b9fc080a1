import ArgumentParser
import Commune
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

/// `commune releases` and `commune rollout`: the fleet's updates (issue 24).
extension CommuneCommand {
    struct Releases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Releases the boxes can be updated to: add a signed bundle, list them.",
                                                        subcommands: [List.self, Add.self], defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            @OptionGroup var options: DataOptions
            @Flag(help: "Print JSON.") var json = false
            func run() async throws {
                let releases = try await options.withCatalog { try await $0.releases() }
                if json { print(try jsonText(releases)); return }
                if releases.isEmpty { print("No releases yet: commune releases add BUNDLE (junction update pack makes one)") }
                for r in releases {
                    print("\(r.version)  \(r.arch)  \(r.bytes / 1_000_000) MB  minimum \(r.minimumVersion)  signed by \(r.signedBy)  added \(r.added.rfc3339)")
                }
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Check a bundle's signature and keep it for rollouts.")
            @OptionGroup var options: DataOptions
            @Argument(help: "The bundle (.jub) from junction update pack.") var bundle: String
            @Option(help: ArgumentHelp("The release keys the boxes trust (the image's /usr/share/junction/release-keys).", valueName: "file"))
            var keyring = "/etc/junction/release-keys"

            func run() async throws {
                let dir = try options.directory()
                do {
                    let keys = try Keyring.load(path: keyring)
                    let local = try LocalBundle(path: bundle)
                    let b = try await UpdateBundle.open(size: local.size, keyring: keys, read: local.fetch)
                    // Read whole once: every block and boot file against the signed index.
                    let sha = try await Self.checkAll(b, local, path: bundle)
                    let m = b.manifest
                    let target = "\(dir)/releases/junction-\(m.version)-\(m.arch).jub"
                    try FileManager.default.createDirectory(atPath: "\(dir)/releases", withIntermediateDirectories: true)
                    if FileManager.default.fileExists(atPath: target) { throw ValidationError("release \(m.version) for \(m.arch) is already here") }
                    try FileManager.default.copyItem(atPath: bundle, toPath: target + ".partial")
                    guard rename(target + ".partial", target) == 0 else { throw ValidationError("cannot file \(target)") }
                    try await options.withCatalog { c in
                        try await c.addRelease(.init(version: m.version.description, arch: m.arch, path: target, bytes: local.size, sha256: sha,
                                                     minimumVersion: m.minimumVersion.description, signedBy: b.signedBy, notes: m.notes, added: .now()))
                        try await c.audit(operator: nil, address: "cli", action: "release added", detail: "\(m.version) \(m.arch) signed by \(b.signedBy)")
                    }
                    print("Release \(m.version) for \(m.arch) added (\(local.size) bytes, signed by \(b.signedBy)); start it with: commune rollout start \(m.version) --arch \(m.arch)")
                } catch let e as UpdateError {
                    throw ValidationError("\(bundle): \(e)")
                }
            }

            /// Reads every block and boot file of the bundle and checks it; the file's SHA-256.
            static func checkAll(_ b: UpdateBundle, _ local: LocalBundle, path: String) async throws -> String {
                let dir = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/commune-check-\(getpid())"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let slot = dir + "/slot"
                FileManager.default.createFile(atPath: slot, contents: nil)
                _ = try await SlotWriter.write(b, fetch: local.fetch, target: slot, current: nil)
                for i in b.manifest.boot.indices { _ = try await SlotWriter.writeBootFile(b, i, fetch: local.fetch, to: dir + "/boot\(i)") }
                return try TusEndpoint.sha256(path)
            }
        }
    }

    struct RolloutCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rollout", abstract: "Update the boxes to a release, in waves.",
                                                        subcommands: [Start.self, Status.self, Stop.self, Retry.self], defaultSubcommand: Status.self)

        struct Start: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Start a rollout: canaries first, each wave once the one before is blessed and recording.")
            @OptionGroup var options: DataOptions
            @Argument(help: "The release's version.") var version: String
            @Option(help: "amd64 or arm64.") var arch = "arm64"
            @Option(help: "Boxes per wave, the last may be 'all' (2,8,30,all).") var waves = "2,8,30,all"
            @Option(help: "Stop when more than this share of a wave fails (percent; one failed canary always stops it).") var maxFailed = 10
            @Option(help: "How long every box of a wave must record on the release before the next wave opens (seconds).") var soak = 3600
            @Option(help: "At most this many boxes download at once.") var maxDownloads = 5

            func validate() throws {
                guard Rollout.parseWaves(waves) != nil else { throw ValidationError("--waves '\(waves)' is not a list of box counts like 2,8,30,all (at most \(Rollout.maxWaves))") }
                guard (0...100).contains(maxFailed) else { throw ValidationError("--max-failed is a percentage, 0 to 100") }
                guard (0...30 * 86_400).contains(soak) else { throw ValidationError("--soak is 0 to 2592000 seconds") }
                guard (1...1000).contains(maxDownloads) else { throw ValidationError("--max-downloads is 1 to 1000") }
            }

            func run() async throws {
                let (r, boxes) = try await options.withCatalog { c in
                    do {
                        let started = try await c.startRollout(version: version, arch: arch, waves: Rollout.parseWaves(waves)!, maxFailedPercent: maxFailed,
                                                               soakSeconds: soak, maxDownloads: maxDownloads)
                        try await c.audit(operator: nil, address: "cli", action: "rollout started", detail: "\(started.0.id): \(waves)")
                        return started
                    } catch let e as Catalog.RolloutError { throw ValidationError(e.description) }
                }
                print("Rollout \(r.id): \(version) to \(boxes.count) boxes in \(Set(boxes.map(\.wave)).count) waves; canaries: \(boxes.filter { $0.wave == 0 }.map(\.device).joined(separator: ", "))")
            }
        }

        struct Status: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Each rollout, its wave, and every box's state.")
            @OptionGroup var options: DataOptions
            @Argument(help: "A rollout's id (default: every rollout).") var id: String?
            @Flag(help: "Print JSON.") var json = false
            func run() async throws {
                let all = try await options.withCatalog { c in
                    var out: [(Rollout, [RolloutBox])] = []
                    for r in try await c.rollouts() where id == nil || r.id == id {
                        if let x = try await c.rollout(id: r.id) { out.append(x) }
                    }
                    return out
                }
                if json {
                    struct Row: Encodable { let rollout: Rollout; let boxes: [RolloutBox] }
                    print(try jsonText(all.map { Row(rollout: $0.0, boxes: $0.1) }))
                    return
                }
                if all.isEmpty { print(id == nil ? "No rollouts yet: commune rollout start VERSION" : "There is no rollout \(id!)") }
                for (r, boxes) in all {
                    print("\(r.id)  \(r.version) \(r.arch)  \(r.state.rawValue)  wave \(min(r.wave + 1, r.waves.count)) of \(r.waves.count)\(r.reason.map { "  — \(TerminalText.safe($0, limit: 300))" } ?? "")")
                    for b in boxes {
                        print("  wave \(b.wave + 1)  \(b.device)  \(b.state.rawValue)\(b.reason.map { "  \(TerminalText.safe($0, limit: 300))" } ?? "")")
                    }
                }
            }
        }

        struct Stop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop a rollout: no box is offered its release any more.")
            @OptionGroup var options: DataOptions
            @Argument var id: String
            @Option(help: "Why (kept in the audit).") var reason = "stopped by an operator"
            func run() async throws {
                try await options.withCatalog { c in
                    do { try await c.stopRollout(id: id, reason: reason) } catch let e as Catalog.RolloutError { throw ValidationError(e.description) }
                    try await c.audit(operator: nil, address: "cli", action: "rollout stopped", detail: "\(id): \(reason)")
                }
                print("Rollout \(id) stopped.")
            }
        }

        struct Retry: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Take a box out of the penalty box: it is offered the release again.")
            @OptionGroup var options: DataOptions
            @Argument var id: String
            @Argument var device: String
            func run() async throws {
                try await options.withCatalog { c in
                    do { try await c.retryRollout(id: id, device: device) } catch let e as Catalog.RolloutError { throw ValidationError(e.description) }
                    try await c.audit(operator: nil, address: "cli", action: "rollout retry", detail: "\(id): \(device)")
                }
                print("\(device) will be offered the release again at its next heartbeat.")
            }
        }
    }
}
