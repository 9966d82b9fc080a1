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
                  junction list --from 22:00 --to 05:00 --activity   (when something moved)
                """)

        @OptionGroup var options: BoxOptions
        @Option(help: "Start of the range.") var from: String?
        @Option(help: "End of the range.") var to: String?
        @Flag(help: "Print JSON for scripts: an array of segments.") var json = false
        @Flag(help: "List when something moved (the activity index: activity.enabled in junction.toml).") var activity = false

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
            /// With --activity: the segment's busiest keyframe (0–255) and each moment something moved.
            var activity: ActivityItem?

            enum CodingKeys: String, CodingKey {
                case id, camera, path, start, end, bytes, sha256, codec, flagged, uploaded, recovered, activity
                case relativePath = "relative_path", durationSeconds = "duration_seconds", clockSynchronized = "clock_synchronized"
            }
        }

        struct ActivityItem: Encodable {
            struct Moment: Encodable { var at: Timestamp; var score: UInt8 }
            var peak: UInt8
            var cells: Int
            var moments: [Moment]
        }

        func run() async throws {
            let config = try options.load()
            let now = Timestamp.now()
            let f = try from.map { try TimeExpression.parse($0, now: now) }
            let t = try to.map { try TimeExpression.parse($0, now: now) }
            let ring = try await config.openRing(readOnly: true)
            let segments = try await ring.segments(from: f, to: t)
            let gaps = try await ring.gaps(from: f, to: t)
            var moved: [String: Ring.SegmentActivity] = [:]
            if activity {
                for a in try await ring.activity(from: f, to: t) { moved[a.path] = a }
            }
            let items = segments.map {
                Item(id: $0.id, camera: $0.camera, path: ring.path(of: $0), relativePath: $0.path, start: $0.start, end: $0.end,
                     durationSeconds: $0.durationSeconds, bytes: $0.bytes, sha256: $0.sha256, codec: $0.codec,
                     flagged: $0.flagged, uploaded: $0.uploaded, recovered: $0.recovered, clockSynchronized: $0.clockSynchronized,
                     activity: moved[$0.path].map { a in
                         ActivityItem(peak: a.summary.peak, cells: a.summary.cells.count, moments: a.moments.map { .init(at: $0.at, score: $0.score) })
                     })
            }
            await ring.close()
            if json {
                print(try Output.json(items))
                return
            }
            if activity {
                printActivity(items, indexed: !moved.isEmpty)
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

extension JunctionCommand.List {
    /// `--activity`: one line per moment something moved, with the segment it is in.
    func printActivity(_ items: [Item], indexed: Bool) {
        guard indexed else {
            print("No activity index for this range: it is recorded while activity.enabled = true in junction.toml.")
            return
        }
        var count = 0
        print("WHEN (local)         MOVEMENT  FILE")
        for item in items {
            for m in item.activity?.moments ?? [] {
                let bar = String(repeating: "#", count: max(1, Int(m.score) * 8 / 255)).padding(8)
                print("\(Output.local(m.at))  \(bar)  \(item.relativePath)")
                count += 1
            }
        }
        print(count == 0 ? "Nothing moved in this range." : "\(count) moments with movement (one per keyframe; # = how much of a cell moved).")
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
