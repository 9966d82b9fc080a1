import ArgumentParser
import Evidence

extension JunctionCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an exported bundle: authentic and complete, or exactly what is wrong.", discussion: VerifyCommand.discussion)

        @Argument(help: "The export's .manifest.json, or the folder holding it.") var bundle: String
        @Option(name: .customLong("commune-key"), help: ArgumentHelp(
            "The commune's published public key (base64), or a file of such keys; repeat for several communes. Without it: the trust file \(VerifyCommand.trustFile).",
            valueName: "base64|file")) var communeKeys: [String] = []
        @Flag(help: "Print JSON for scripts.") var json = false

        func run() throws {
            let trusted: [Curve25519PublicKey]
            do { trusted = try VerifyCommand.trustedKeys(communeKeys) } catch { throw ValidationError(error.description) }
            let status = VerifyCommand.main(path: bundle, trusting: trusted, json: json)
            if status != 0 { throw ExitCode(status) }
        }
    }
}
