import ArgumentParser
import Config
import Ring

extension JunctionCommand {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify every invariant of the ring and its index (changes nothing).",
            discussion: """
                Exit status 0 when all is well, 1 when a problem was found.
                Examples:
                  junction check
                  junction check --deep     # also re-hash every file (reads the whole card)
                """)

        @OptionGroup var options: BoxOptions
        @Flag(help: "Also verify each file's SHA-256 (slow: reads every segment).") var deep = false
        @Flag(help: "Print JSON for scripts.") var json = false

        struct Report: Encodable {
            var ok: Bool
            var segments: Int64
            var findings: [Ring.Finding]
        }

        func run() async throws {
            let config = try options.load()
            let ring = try await config.openRing(readOnly: true)
            let daemon = DaemonState.read(config)
            let open = daemon.running ? daemon.health?.openSegment : nil
            let findings = try await ring.check(deep: deep, skipping: open, recorderRunning: daemon.running)
            let usage = try await ring.usage()
            await ring.close()
            if json {
                print(try Output.json(Report(ok: findings.isEmpty, segments: usage.segments, findings: findings)))
            } else if findings.isEmpty {
                print("✔ ring consistent: \(usage.segments) segments, \(Output.bytes(usage.ringBytes)), every indexed file present with its recorded size\(deep ? " and SHA-256" : "")")
            } else {
                print("✘ \(findings.count) problem(s):")
                for f in findings { print("  \(f.kind.rawValue): \(f.path): \(f.detail)") }
                print("Restarting the recorder repairs what can be repaired (systemctl restart junction); junction reindex rebuilds the index from the files.")
            }
            if !findings.isEmpty { throw ExitCode(1) }
        }
    }
}
