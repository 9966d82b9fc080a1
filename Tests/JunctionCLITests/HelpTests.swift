import ArgumentParser
import Testing
@testable import JunctionCLI

/// Every subcommand's --help shows an example, and shell completions are generated for the
/// shells a technician's laptop has.
@Suite struct HelpTests {
    @Test func everySubcommandHasAnExample() {
        for sub in JunctionCommand.configuration.subcommands {
            let help = JunctionCommand.helpMessage(for: sub)
            #expect(help.contains("Example"), "\(sub._commandName) --help has no example")
        }
    }

    @Test func completionScripts() {
        for shell in [CompletionShell.bash, .zsh, .fish] {
            let script = JunctionCommand.completionScript(for: shell)
            #expect(script.contains("junction") && script.contains("snapshot") && script.contains("export"), "\(shell)")
        }
    }
}
