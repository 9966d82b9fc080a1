import ArgumentParser
import Commune
import Hummingbird
import Logging
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `commune`: the commune server. `commune serve` receives uploads; the other subcommands
/// administer it from the server machine (they read the data directory, no credentials).
@main
struct CommuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commune",
        abstract: "The commune server: receives verified footage uploads from junction boxes.",
        discussion: """
            Examples:
              commune devices add thaithuy-0042 --data /srv/commune
              commune serve --data /srv/commune --listen 127.0.0.1:8080 --insecure-http
              commune clips --data /srv/commune --json
            """,
        subcommands: [Serve.self, Devices.self, Clips.self])
}

struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The server's data directory (clips and catalog).", valueName: "dir"))
    var data: String

    func catalog() async throws -> Catalog {
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        var logger = Logger(label: "commune")
        logger.logLevel = .warning
        return try await Catalog.open(path: data + "/catalog.sqlite", logger: logger)
    }
}

extension CommuneCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Receive uploads (tus 1.0.0 at /files/).")

        @OptionGroup var options: DataOptions
        @Option(help: "Address and port to listen on.") var listen = "127.0.0.1:8080"
        @Flag(help: "Serve plain HTTP (only on a trusted network or behind a TLS proxy).") var insecureHTTP = false

        func validate() throws {
            guard insecureHTTP else {
                throw ValidationError("HTTPS with a configured certificate is not built in yet: put the server behind a TLS proxy and pass --insecure-http")
            }
            guard listen.split(separator: ":").count == 2, Int(listen.split(separator: ":")[1]) != nil else {
                throw ValidationError("--listen is ADDRESS:PORT, e.g. 127.0.0.1:8080")
            }
        }

        func run() async throws {
            let catalog = try await options.catalog()
            let parts = listen.split(separator: ":")
            let logger = Logger(label: "commune")
            let router = Router()
            TusEndpoint(configuration: .init(data: options.data), catalog: catalog, logger: logger).register(on: router)
            let app = Application(router: router,
                                  configuration: .init(address: .hostname(String(parts[0]), port: Int(parts[1])!), serverName: "commune"),
                                  logger: logger)
            try await app.runService()
            await catalog.close()
        }
    }

    struct Devices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices, or add one.", subcommands: [List.self, Add.self], defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            @OptionGroup var options: DataOptions
            @Flag(help: "Print JSON.") var json = false
            func run() async throws {
                let catalog = try await options.catalog()
                let devices = try await catalog.devices()
                await catalog.close()
                if json {
                    let e = JSONEncoder()
                    e.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try e.encode(devices), as: UTF8.self))
                } else {
                    for d in devices { print("\(d.id)\t\(d.lastSeen?.rfc3339 ?? "never seen")") }
                }
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Register a device; prints its token once (the server keeps only a hash).")
            @OptionGroup var options: DataOptions
            @Argument(help: "The device id, as in the box's device.id.") var id: String
            @Flag(help: "Print {\"id\":..,\"token\":..}.") var json = false
            func run() async throws {
                let catalog = try await options.catalog()
                let token: String
                do {
                    token = try await catalog.addDevice(id: id)
                } catch {
                    await catalog.close()
                    throw ValidationError("device \(id) is already registered (commune devices lists them)")
                }
                await catalog.close()
                if json {
                    print("{\"id\":\"\(id)\",\"token\":\"\(token)\"}")
                } else {
                    print("Device \(id) registered. Put this token in the box's junction.toml as server.token; it is not shown again:")
                    print(token)
                }
            }
        }
    }

    struct Clips: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the clips that arrived whole and verified.")
        @OptionGroup var options: DataOptions
        @Option(help: "Only this device.") var device: String?
        @Flag(help: "Print JSON: an array of {path, device, camera, start, end, bytes, sha256, ...}.") var json = false
        func run() async throws {
            let catalog = try await options.catalog()
            let clips = try await catalog.clips(device: device)
            await catalog.close()
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try e.encode(clips), as: UTF8.self))
            } else if clips.isEmpty {
                print("No clips yet.")
            } else {
                for c in clips { print("\(c.device)  \(c.camera)  \(c.start.rfc3339) → \(c.end.rfc3339)  \(c.bytes) B  \(c.path)") }
            }
        }
    }
}
