import ArgumentParser
import Config
import Control
import Ring

extension JunctionCommand {
    /// `junction flag` (named FlagRange here: `Flag` is argument-parser's property wrapper).
    struct FlagRange: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "flag",
            abstract: "Flag a time range: pin its footage on the card for upload to the commune.",
            discussion: """
                Times: 14:02 (today, local), 2026-11-29 14:02 (local), now, or RFC 3339; relative
                times with =: --from=-10m, --to=+5m.
                upload.pre_roll_seconds and upload.post_roll_seconds are added around the range.
                A range that reaches into the future stays open and pins footage as it is recorded.
                Examples:
                  junction flag --from 14:02 --to 14:09 --reason "accident QL37B"
                  junction flag --from=-10m --to now
                """)

        @OptionGroup var options: BoxOptions
        @Option(help: "Start of the range.") var from: String
        @Option(help: "End of the range.") var to: String
        @Option(help: "Why (sent with the footage).") var reason: String?
        @Flag(help: "Print JSON for scripts.") var json = false

        func validate() throws {
            let now = Timestamp.now()
            let f = try TimeExpression.parse(from, now: now), t = try TimeExpression.parse(to, now: now)
            if t <= f { throw ValidationError("--to (\(to)) must be after --from (\(from))") }
            if f > now { throw ValidationError("--from (\(from)) is in the future: flag footage that has started") }
        }

        func run() async throws {
            let config = try options.load()
            let now = Timestamp.now()
            let request = Ring.FlagRequest(
                camera: config.camera.id, from: try TimeExpression.parse(from, now: now), to: try TimeExpression.parse(to, now: now),
                reason: reason, source: .cli, preRollSeconds: Double(config.upload.preRollSeconds),
                postRollSeconds: Double(config.upload.postRollSeconds))
            let flag: Ring.Flag
            // Through the running recorder when there is one; on the index itself otherwise.
            if let answer = try Control.send(.init(op: .flag, camera: request.camera, from: request.from, to: request.to,
                                                   reason: request.reason, preRollSeconds: request.preRollSeconds,
                                                   postRollSeconds: request.postRollSeconds),
                                             socket: config.controlSocketPath) {
                guard let f = answer.flag else { throw CLIError(answer.error ?? "the recorder refused the flag") }
                flag = f
            } else {
                let ring = try await config.openRing()
                do {
                    flag = try await ring.flag(request, now: now)
                } catch {
                    await ring.close()
                    throw CLIError(error.message)
                }
                await ring.close()
            }
            let ring = try await config.openRing()
            let usage = try await ring.usage()
            await ring.close()
            if json {
                print(try Output.json(flag))
                return
            }
            print("✔ Flag \(flag.id): \(Output.local(flag.from)) → \(Output.local(flag.to)) (with \(config.upload.preRollSeconds) s before, \(config.upload.postRollSeconds) s after)")
            print("  \(flag.segments) segments, \(Output.bytes(flag.bytes)) pinned on the card\(flag.state == .open ? "; footage still to come is pinned as it is recorded" : "")")
            print("  Pinned in all: \(Output.bytes(usage.pinnedBytes)) of the \(Output.bytes(usage.pinnedCapBytes)) cap. It stays on the card until uploaded or unflagged (junction flags).")
        }
    }

    struct Flags: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the flags and how much of each has been uploaded.",
            discussion: "Example:\n  junction flags --json")

        @OptionGroup var options: BoxOptions
        @Flag(help: "Include withdrawn flags.") var all = false
        @Flag(help: "Print JSON for scripts.") var json = false

        func run() async throws {
            let config = try options.load()
            let ring = try await config.openRing()
            let flags = try await ring.flags(includeReleased: all)
            await ring.close()
            if json {
                print(try Output.json(flags))
                return
            }
            if flags.isEmpty {
                print("No flags. Flag footage with: junction flag --from 14:02 --to 14:09 --reason \"...\"")
                return
            }
            print("ID    FROM (local)         TO                   STATE     SEGMENTS  UPLOADED  SIZE      REASON")
            for f in flags {
                print("\(String(f.id).padding(5)) \(Output.local(f.from))  \(Output.local(f.to))  \(f.state.rawValue.padding(9)) \(String(f.segments).padding(9)) \(String(f.uploadedSegments).padding(9)) \(Output.bytes(f.bytes).padding(9)) \(f.reason ?? "")")
            }
        }
    }

    struct Unflag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a flag: its footage is no longer pinned (what was uploaded stays uploaded).",
            discussion: "Example:\n  junction unflag 3")

        @OptionGroup var options: BoxOptions
        @Argument(help: "The flag's id (junction flags lists them).") var id: Int64

        func run() async throws {
            let config = try options.load()
            let f: Ring.Flag
            if let answer = try Control.send(.init(op: .unflag, id: id), socket: config.controlSocketPath) {
                guard let flag = answer.flag else { throw CLIError(answer.error ?? "the recorder refused") }
                f = flag
            } else {
                let ring = try await config.openRing()
                do {
                    f = try await ring.unflag(id: id)
                } catch {
                    await ring.close()
                    throw CLIError(error.message)
                }
                await ring.close()
            }
            print("✔ Flag \(f.id) withdrawn; footage no other flag covers can be overwritten again.")
        }
    }
}
