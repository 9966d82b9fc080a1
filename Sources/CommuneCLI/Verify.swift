import ArgumentParser
import Evidence

/// `commune verify`: the offline bundle check, the same as `junction verify`.
extension CommuneCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an evidence bundle: authentic and complete, or exactly what is wrong.", discussion: VerifyCommand.discussion)
        @Argument(help: "The bundle's .manifest.json, or the folder holding it.") var bundle: String
        @Flag(help: "Print JSON for scripts.") var json = false
        func run() throws {
            let status = VerifyCommand.main(path: bundle, json: json)
            if status != 0 { throw ExitCode(status) }
        }
    }
}
