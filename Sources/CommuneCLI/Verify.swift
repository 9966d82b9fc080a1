import ArgumentParser
import Evidence
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `commune verify`: the offline bundle check, the same as `junction verify`; on the commune's
/// own server it also trusts the commune's own key (`<data>/commune-key.pub`).
extension CommuneCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an evidence bundle: authentic and complete, or exactly what is wrong.", discussion: VerifyCommand.discussion)
        @Argument(help: "The bundle's .manifest.json, or the folder holding it.") var bundle: String
        @Option(name: .customLong("commune-key"), help: ArgumentHelp(
            "The commune's published public key (base64), or a file of such keys; repeat for several. Without it: the trust file \(VerifyCommand.trustFile), and this server's own key with --data.",
            valueName: "base64|file")) var communeKeys: [String] = []
        @Option(help: ArgumentHelp("This commune server's data directory, whose own key is then trusted.", valueName: "dir")) var data: String?
        @Flag(help: "Print JSON for scripts.") var json = false
        func run() throws {
            var own: [String] = []
            if let data, let text = FileManager.default.contents(atPath: data + "/commune-key.pub") {
                own.append(String(decoding: text.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            let trusted: [Curve25519PublicKey]
            do { trusted = try VerifyCommand.trustedKeys(communeKeys, also: own) } catch { throw ValidationError(error.description) }
            let status = VerifyCommand.main(path: bundle, trusting: trusted, json: json)
            if status != 0 { throw ExitCode(status) }
        }
    }
}
