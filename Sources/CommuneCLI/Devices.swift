import ArgumentParser
import Commune
import Evidence
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `commune devices`: list the boxes, register one, re-enrol one's key (issue 13).
extension CommuneCommand {
    struct Devices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices, add one, or re-enrol one's key.", subcommands: [List.self, Add.self, Rekey.self],
                                                        defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            @OptionGroup var options: DataOptions
            @Flag(help: "Print JSON.") var json = false
            func run() async throws {
                let catalog = try await options.catalog(create: false)
                let devices = try await catalog.devices()
                await catalog.close()
                if json {
                    print(try jsonText(devices))
                } else if devices.isEmpty {
                    print("No devices yet: commune devices add ID")
                } else {
                    for d in devices { print(Self.line(d)) }
                }
            }

            /// Everything in a device's health came from the box over the network: made safe
            /// for the terminal (no escape sequences) before it is printed.
            static func line(_ d: Catalog.Device) -> String {
                var s = "\(d.id)  last seen \(d.lastSeen?.rfc3339 ?? "never")"
                s += d.publicKey.flatMap(DeviceKey.publicKey(base64:)).map { "  key \(DeviceKey.fingerprint(of: $0))" } ?? "  no key yet"
                if let h = d.health {
                    let safe = TerminalText.safe
                    s += "  \(safe(h.recording, 40))"
                    if let o = h.oldest, let n = h.newest { s += "  ring \(o.rfc3339) → \(n.rfc3339)" }
                    s += "  free \(h.freeBytes / 1_000_000) MB  pinned \(h.pinnedBytes / 1_000_000) MB  queue \(h.queuedSegments)"
                    s += h.clockSynchronized ? "  clock synced" : "  CLOCK NOT SYNCED"
                    s += "  v\(safe(h.version, 40))"
                    if let d = h.damagedSegments, d > 0 { s += "  DAMAGED SEGMENTS: \(d)" }
                    if let e = h.lastError { s += "  last error: \(safe(e, 300))" }
                }
                return s
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Register a device; prints its token once (the server keeps only a hash).")
            @OptionGroup var options: DataOptions
            @Argument(help: "The device id, as in the box's device.id.") var id: String
            @Option(help: ArgumentHelp("The box's public key (base64, from junction doctor on the box); without it the first heartbeat binds the key the box sends.",
                                       valueName: "base64")) var key: String?
            @Flag(help: "Print {\"id\":..,\"token\":..}.") var json = false
            func validate() throws {
                guard PlainName.isValid(id) else { throw ValidationError(PlainName.problem(id, what: "device id")) }
                if let key, DeviceKey.publicKey(base64: key) == nil {
                    throw ValidationError("--key is not an Ed25519 public key in base64 (44 characters, as junction doctor prints it)")
                }
            }
            func run() async throws {
                let token = try await options.withCatalog { catalog in
                    let token: String
                    do { token = try await catalog.addDevice(id: id) } catch {
                        throw ValidationError("device \(id) is already registered (commune devices lists them)")
                    }
                    if let key { try await catalog.setKey(device: id, publicKey: key) }
                    return token
                }
                if json {
                    print(try jsonText(["id": id, "token": token, "commune_key": options.communePublicKey].compactMapValues { $0 }))
                } else {
                    if let key = options.communePublicKey {
                        print("This commune's key, for the box's junction.toml as server.commune_key (it keeps countersignatures under it only):")
                        print(key)
                    }
                    // The token last: scripts take the last line.
                    print("Device \(id) registered. Put this token in the box's junction.toml as server.token; it is not shown again:")
                    print(token)
                }
            }
        }
    }

    struct Rekey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-enrol a box's key (a re-flashed card, a replaced box): with --key it is set now, without it the box's next heartbeat binds the key it sends.",
            discussion: "The old key's footage stays verified under the old key; the change is written to the audit log.")
        @OptionGroup var options: DataOptions
        @Argument(help: "The device id.") var id: String
        @Option(help: ArgumentHelp("The box's new public key (base64, from junction doctor).", valueName: "base64")) var key: String?
        func validate() throws {
            guard PlainName.isValid(id) else { throw ValidationError(PlainName.problem(id, what: "device id")) }
            if let key, DeviceKey.publicKey(base64: key) == nil { throw ValidationError("--key is not an Ed25519 public key in base64") }
        }
        func run() async throws {
            try await options.withCatalog { catalog in
                let old = try await catalog.publicKey(device: id)
                try await catalog.setKey(device: id, publicKey: key)
                try await catalog.audit(operator: nil, address: commandLine, action: "device rekeyed",
                                        detail: "\(id): \(old ?? "no key") → \(key ?? "the key of its next heartbeat")")
            }
            print(key == nil ? "Device \(id): its next heartbeat binds the key it sends." : "Device \(id): key set.")
        }
    }
}
