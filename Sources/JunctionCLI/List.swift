import ArgumentParser
import Config
import Ring

extension JunctionCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the recorded segments (and gaps) in a time range.",
            discussion: """
                Times: 14:02 (today, local), 2026-11-29 14:02 (local), RFC 3339, or relative with =: --from=-2h.
                Examples:
                  junction list --from 14:00 --to 14:10
                  junction list --from=-1h --json
                """)

        @OptionGroup var options: BoxOptions
        @Option(help: "Start of the range.") var from: String?
        @Option(help: "End of the range.") var to: String?
        @Flag(help: "Print JSON for scripts: an array of segments.") var json = false

        func validate() throws {
            let now = Timestamp.now()
            if let f = try from.map({ try TimeExpression.parse($0, now: now) }),
               let t = try to.map({ try TimeExpression.parse($0, now: now) }), t < f {
                throw ValidationError("--to (\(to!)) is before --from (\(from!)): swap them")
            }
        }

        struct Item: Encodable {
            var id: Int64
            var camera: String
            var path: String
            var relativePath: String
            var start: Timestamp
            var end: Timestamp
            var durationSeconds: Double
            var bytes: Int64
            var sha256: String
            var codec: String
            var flagged: Bool
            var uploaded: Bool
            var recovered: Bool
            var clockSynchronized: Bool

            enum CodingKeys: String, CodingKey {
                case id, camera, path, start, end, bytes, sha256, codec, flagged, uploaded, recovered
                case relativePath = "relative_path", durationSeconds = "duration_seconds", clockSynchronized = "clock_synchronized"
            }
        }

        func run() async throws {
            let config = try options.load()
            let now = Timestamp.now()
            let f = try from.map { try TimeExpression.parse($0, now: now) }
            let t = try to.map { try TimeExpression.parse($0, now: now) }
            let ring = try await config.openRing(readOnly: true)
            let segments = try await ring.segments(from: f, to: t)
            let gaps = try await ring.gaps(from: f, to: t)
            let items = segments.map {
                Item(id: $0.id, camera: $0.camera, path: ring.path(of: $0), relativePath: $0.path, start: $0.start, end: $0.end,
                     durationSeconds: $0.durationSeconds, bytes: $0.bytes, sha256: $0.sha256, codec: $0.codec,
                     flagged: $0.flagged, uploaded: $0.uploaded, recovered: $0.recovered, clockSynchronized: $0.clockSynchronized)
            }
            await ring.close()
            if json {
                print(try Output.json(items))
                return
            }
            if items.isEmpty {
                print("No footage in this range." + (f != nil || t != nil ? " Try a wider range, or junction status to see what the ring holds." : ""))
                return
            }
            print("START (local)        END        LENGTH    SIZE     MARKS  FILE")
            var gapIndex = 0
            for item in items {
                while gapIndex < gaps.count, gaps[gapIndex].start <= item.start {
                    let g = gaps[gapIndex]
                    print("\(Output.local(g.start))  GAP \(Output.duration(g.end.seconds(since: g.start))): \(g.reason)")
                    gapIndex += 1
                }
                let end = Output.local(item.end).suffix(8)
                let marks = (item.flagged ? "F" : "-") + (item.uploaded ? "U" : "-") + (item.recovered ? "R" : "-")
                let len = Output.duration(item.durationSeconds).padding(9)
                let size = Output.bytes(item.bytes).padding(8)
                print("\(Output.local(item.start))  \(end)  \(len) \(size) \(marks)    \(item.relativePath)")
            }
            let total = items.reduce(Int64(0)) { $0 + $1.bytes }
            print("\(items.count) segments, \(Output.bytes(total)). Marks: F flagged, U uploaded, R recovered after a crash.")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
