import ArgumentParser
import Config
import Media
import Ring
import Uplink
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension JunctionCommand {
    struct Provision: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write (or edit) junction.toml, checking the camera and the commune live before saving.",
            discussion: """
                Values come from the flags; on a terminal, what is missing is asked for (the current value is
                the default: press Enter to keep it). Nothing is written until everything checks out.
                Examples:
                  junction provision                                   # asks, step by step
                  junction provision --device-id thaithuy-0042 --camera-url rtsp://admin:pw@192.168.1.64:554/Streaming/Channels/101 \\
                      --server-url https://commune.example.vn --token 3f9c…
                  junction provision --camera-url rtsp://… --offline   # camera not connected yet: skip the live checks
                """)

        @OptionGroup var options: BoxOptions
        @Option(help: "The box's name, e.g. thaithuy-0042.") var deviceId: String?
        @Option(help: "The camera's RTSP address, with user and password.") var cameraUrl: String?
        @Option(help: "The commune server, e.g. https://commune.example.vn (\"none\" for no uplink).") var serverUrl: String?
        @Option(help: "This box's token (commune devices add ID prints it).") var token: String?
        @Option(help: "Where recordings go.") var dataPath: String?
        @Flag(help: "Do not test the camera and the server (for a box prepared away from its junction).") var offline = false

        func run() async throws {
            let existing = try? JunctionConfiguration.load(path: options.config)
            let interactive = isatty(0) == 1
            func ask(_ label: String, _ given: String?, _ current: String?, example: String) throws -> String {
                if let given { return given }
                guard interactive else {
                    if let current { return current }
                    throw ValidationError("--\(label.lowercased().replacingSpaces) is needed (e.g. \(example)); or run junction provision on a terminal to be asked")
                }
                print("\(label)\(current.map { " [\($0)]" } ?? " (e.g. \(example))"): ", terminator: "")
                let answer = (readLine() ?? "").trimmingSpaces
                if answer.isEmpty, let current { return current }
                guard !answer.isEmpty else { throw ValidationError("\(label) is needed") }
                return answer
            }
            let device = try ask("Device id", deviceId, existing?.device.id, example: "thaithuy-0042")
            let camera = try ask("Camera URL", cameraUrl, existing?.camera.url, example: "rtsp://admin:password@192.168.1.64:554/Streaming/Channels/101")
            let data = try ask("Data path", dataPath, existing?.storage.path ?? "/var/lib/junction", example: "/var/lib/junction")
            let server = try ask("Server URL", serverUrl, existing?.server?.url ?? "none", example: "https://commune.example.vn")
            let hasServer = server.lowercased() != "none" && !server.isEmpty
            let tok = hasServer ? try ask("Token", token, existing?.server?.token.reveal(), example: "the line `commune devices add \(device)` printed") : ""

            var text = """
                # junction.toml, written by junction provision (README: "Configuring a box").
                [device]
                id = \(Self.quote(device))

                [camera]
                url = \(Self.quote(camera))

                [storage]
                path = \(Self.quote(data))

                """
            if hasServer {
                text += """

                    [server]
                    url = \(Self.quote(server))
                    token = \(Self.quote(tok))
                    \(server.hasPrefix("http://") ? "allow_insecure_http = true   # plain HTTP: trusted networks only\n" : "")
                    """
            }
            // The same checks `junction run` makes, before anything is written.
            let config: JunctionConfiguration
            do {
                config = try JunctionConfiguration.parse(text, file: options.config)
            } catch {
                throw ValidationError("\(error.message)\(error.key.map { " (\($0))" } ?? "")")
            }
            if !offline {
                Media.Snapshot.quietFFmpegLogs()
                print("Checking the camera…")
                do {
                    let input = try CameraInput(options: config.cameraInputOptions, interrupter: Interrupter())
                    print("✔ camera: \(input.info.videoCodec) \(input.info.width)×\(input.info.height)")
                } catch {
                    throw CLIError("✘ camera \(config.camera.redactedURL): \(error.message)\n  Nothing was written. Fix the address, or pass --offline to write it anyway.")
                }
                if hasServer {
                    print("Checking the commune…")
                    let doctor = try JunctionCommand.Doctor.parse(["--config", options.config])
                    let checks = await doctor.server(config)
                    for c in checks where c.level == .failure {
                        throw CLIError("✘ \(c.detail)\n  \(c.advice ?? "")\n  Nothing was written. Fix it, or pass --offline to write it anyway.")
                    }
                    for c in checks { print("\(c.mark) commune: \(c.detail)") }
                }
            }
            try Self.write(text, to: options.config)
            print("Wrote \(options.config). Start recording: systemctl restart junction; then: junction doctor")
        }

        static func quote(_ s: String) -> String {
            "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
        }

        /// Atomic and synced: a power cut leaves the old file or the new one, never half of one.
        static func write(_ text: String, to path: String) throws {
            do {
                try FileSystem.writeAtomically(Array(text.utf8), to: path, mode: 0o640, durable: true)
            } catch {
                throw CLIError("\(error) (run as root, or pass --config)")
            }
        }
    }
}

private extension String {
    var replacingSpaces: String { replacing(" ", with: "-") }
}
