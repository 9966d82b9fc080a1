import ArgumentParser
import Activity
import Config
import Media
import Ring
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JunctionCommand {
    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save a JPEG of the camera now (to aim and focus it), or of the recording at a time.",
            discussion: """
                Live pictures open a second connection to the camera; the recorder keeps recording.
                Examples:
                  junction snapshot                      # the camera now, into ./snapshot-….jpg
                  junction snapshot -o /tmp/aim.jpg
                  junction snapshot --at 21:40 -o /media/usb/2140.jpg
                  junction snapshot --at=-5m
                  junction snapshot --zones              # the motion zones in red over the 16x9 grid
                """)

        @OptionGroup var options: BoxOptions
        @Option(name: [.customShort("o"), .long], help: "Where to write the JPEG.") var output: String?
        @Option(help: "Take the picture from the recording at this time instead of the live camera.") var at: String?
        @Flag(help: "Draw the motion zones ([motion] zones and cells, tinted red) over the 16x9 activity grid, cells numbered 0 (top left) to 143, 16 a row.")
        var zones = false
        @Flag(help: "Print {path, width, height, bytes, source} as JSON.") var json = false

        struct Result: Encodable {
            var path: String
            var width: Int
            var height: Int
            var bytes: Int
            var source: String
            var at: Timestamp?
        }

        func run() async throws {
            let config = try options.load()
            Media.Snapshot.quietFFmpegLogs()
            let now = Timestamp.now()
            let picture: Media.Snapshot.Picture
            let zoneCells = zones ? config.motion.rules.zone : nil
            var source: String
            var when: Timestamp?
            if let at {
                let t: Timestamp
                do { t = try TimeExpression.parse(at, now: now) } catch { throw ValidationError(error.description) }
                let ring = try await config.openRing(readOnly: true)
                let hit = try await ring.segments(camera: config.camera.id, from: t, to: t + 0.001).first
                let all = try await ring.segments(camera: config.camera.id)
                let path = hit.map { ring.path(of: $0) }
                await ring.close()
                guard let hit, let path else {
                    let held = all.first.map { "the ring holds \(Output.local($0.start)) → \(Output.local(all.last!.end))" } ?? "the ring is empty"
                    throw CLIError("nothing recorded at \(Output.local(t)): \(held)")
                }
                do {
                    picture = try Media.Snapshot.recorded(segment: path, atSeconds: max(0, t.seconds(since: hit.start)), zones: zoneCells)
                } catch {
                    throw CLIError("cannot take a picture from \(hit.path): \(error.message). Run junction check --deep.")
                }
                source = "recording"
                when = t
            } else {
                do {
                    let input = try CameraInput(options: config.cameraInputOptions, interrupter: Interrupter())
                    picture = try Media.Snapshot.live(input, seconds: Double(config.camera.connectTimeoutSeconds), zones: zoneCells)
                } catch {
                    throw CLIError("""
                        cannot take a picture from the camera (\(config.camera.redactedURL)): \(error.message)
                        A picture from the recording instead: junction snapshot --at=-1m
                        """)
                }
                source = "live camera"
                when = now
            }
            let path = output ?? "snapshot-\(config.device.id)-\(now.compact).jpg"
            guard FileManager.default.createFile(atPath: path, contents: Data(picture.jpeg)) else {
                throw CLIError("cannot write \(path): check the folder exists and is writable")
            }
            let result = Result(path: path, width: picture.width, height: picture.height, bytes: picture.jpeg.count, source: source, at: when)
            if json {
                print(try Output.json(result))
            } else {
                print("Snapshot \(picture.width)×\(picture.height) (\(Output.bytes(Int64(picture.jpeg.count)))) from the \(source)\(when.map { " at \(Output.local($0))" } ?? "") → \(path)")
                if let zoneCells {
                    let m = config.motion
                    let what = m.zones.isEmpty && m.cells.isEmpty ? "no zone is set, so motion counts the whole picture" : "\(zoneCells.count) of \(ActivityGrid.cells) cells"
                    print("Zones in red: \(what)\(m.enabled ? "" : " (motion flags are off: [motion] enabled = false)"). The grid's cells are numbered 0 (top left) to 143, 16 a row, for [motion] cells.")
                }
            }
        }
    }
}
