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

/// `commune key`: the commune's public key, to publish (issue 23): what a court, a lawyer or
/// another police unit needs, beside a bundle, to check it (`--commune-key`, or one line of the
/// trust file `/etc/junction/commune-keys`), and the fingerprint to read aloud.
extension CommuneCommand {
    struct PublishedKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key", abstract: "Print this commune's public key and fingerprint, to publish for whoever verifies its evidence.")
        @OptionGroup var options: DataOptions
        @Flag(help: "Print {\"public_key\":..,\"fingerprint\":..}.") var json = false
        func run() throws {
            guard let key = options.communePublicKey, let raw = DeviceKey.publicKey(base64: key) else {
                throw ValidationError("there is no commune key in \(try options.directory()) yet: it is made when commune serve first starts there")
            }
            if json {
                print(try jsonText(["public_key": key, "fingerprint": DeviceKey.fingerprint(of: raw)]))
            } else {
                print("This commune's public key (commune verify / junction verify --commune-key, or a line of \(VerifyCommand.trustFile)):")
                print(key)
                print("Fingerprint, to read aloud and compare: \(DeviceKey.fingerprint(of: raw))")
            }
        }
    }
}
