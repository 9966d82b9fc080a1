import ArgumentParser
import Recorder

/// `junction`: the box. `junction run` is the daemon; every other subcommand is the
/// technician's CLI. This type only wires subcommands; each lives in its own file.
@main
struct JunctionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "junction",
        abstract: "Records a junction camera into a ring buffer on the SD card and sends flagged footage to the commune.",
        discussion: """
            Examples:
              junction run --config /boot/firmware/junction.toml
              junction status
              junction list --from 14:00 --to 14:10
              junction check --deep
            """,
        version: JunctionVersion.current,
        subcommands: [Run.self, Status.self, List.self, FlagRange.self, Flags.self, Unflag.self, Snapshot.self, Export.self, Verify.self, Check.self, Doctor.self, Provision.self, Firstboot.self, Reindex.self, UpdateCommand.self, SettingsCommand.self]
    )
}
