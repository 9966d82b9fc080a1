import ArgumentParser
import Config
import Recorder
import Ring

extension JunctionCommand {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the box is doing: recording, camera, ring, gaps.",
            discussion: """
                Exit status 0 when recording, 1 when not (the first line says why).
                Example:
                  junction status
                  junction status --json | jq .recording
                """)

        @OptionGroup var options: BoxOptions
        @Flag(help: "Print JSON for scripts.") var json = false

        struct Report: Encodable {
            var device: String
            var recording: Bool
            var problem: String?
            var advice: String?
            var health: RecorderHealth?
            var usage: Ring.Usage
            var oldest: Timestamp?
            var newest: Timestamp?
            var gapsLast24h: [Gap]

            enum CodingKeys: String, CodingKey {
                case device, recording, problem, advice, health, usage, oldest, newest
                case gapsLast24h = "gaps_last_24h"
            }
        }

        func run() async throws {
            let config = try options.load()
            let ring = try await config.openRing()
            let now = Timestamp.now()
            let daemon = DaemonState.read(config, now: now)
            let usage = try await ring.usage()
            let all = try await ring.segments(camera: config.camera.id)
            let gaps = try await ring.gaps(camera: config.camera.id, from: now + -86400, to: nil)
            await ring.close()

            var problem: String? = daemon.note
            var advice: String? = daemon.running ? nil : "start it: systemctl start junction (or junction run --config \(options.config))"
            if daemon.running, let h = daemon.health, h.state != .recording {
                problem = h.lastError.map { "not recording: \($0)" } ?? "not recording yet (\(h.state.rawValue))"
                advice = h.lastErrorCode.map(Self.advice(forCode:))
            }
            let recording = daemon.running && daemon.health?.state == .recording
            let report = Report(device: config.device.id, recording: recording, problem: recording ? nil : problem,
                                advice: recording ? nil : advice, health: daemon.health, usage: usage,
                                oldest: all.first?.start, newest: all.last?.end, gapsLast24h: gaps)
            if json {
                print(try Output.json(report))
            } else {
                print(Self.render(report, now: now))
            }
            if !recording { throw ExitCode(1) }
        }

        static func advice(forCode code: String) -> String {
            switch code {
            case "unauthenticated": "fix the user name and password in camera.url"
            case "notFound": "fix the stream path in camera.url (see the camera's manual for its RTSP address)"
            case "timedOut", "unavailable", "endOfStream": "check the camera's power and cable, and that camera.url has its address; the box keeps retrying"
            case "unsupportedCodec": "set the camera's video to H.264 or H.265 in its web page"
            case "noVideo": "camera.url names a stream without video; use the camera's main video stream"
            case "storageFull", "storage": "check the data card: junction doctor, junction check"
            default: "see the log: journalctl -u junction"
            }
        }

        static func render(_ r: Report, now: Timestamp) -> String {
            var lines: [String] = []
            if r.recording, let h = r.health {
                lines.append("Junction \(r.device): RECORDING since \(Output.local(h.since)) (\(Output.duration(now.seconds(since: h.since))))")
            } else {
                lines.append("Junction \(r.device): NOT RECORDING: \(r.problem ?? "unknown")")
                if let a = r.advice { lines.append("  What to do: \(a)") }
            }
            if let h = r.health {
                var cam = "Camera   \(h.cameraID)  \(h.cameraURL)"
                if let s = h.stream {
                    cam += "\n         \(s.videoCodec) \(s.width)x\(s.height)"
                    if r.recording {
                        cam += ", \(String(format1: h.fps)) fps, \(Int(h.bitrateKbps)) kbit/s"
                    }
                }
                if let last = h.lastPacketAt, r.recording {
                    cam += ", last frame \(String(format1: max(0, now.seconds(since: last)))) s ago"
                }
                cam += ", \(h.reconnects) reconnects"
                lines.append(cam)
                if let s = h.stream, let note = s.audioNote { lines.append("Audio    \(note)") }
                else if let s = h.stream, let a = s.audioCodec { lines.append("Audio    \(a) \(s.audioKept ? "recorded" : "not recorded")") }
                if let e = h.lastError, r.recording, let at = h.lastErrorAt {
                    lines.append("Last error \(Output.local(at)): \(e)")
                }
                if let e = h.storageError { lines.append("Storage  PROBLEM: \(e)") }
                if !h.unusedCameraOptions.isEmpty {
                    lines.append("Config   camera options not used (typo?): \(h.unusedCameraOptions.joined(separator: ", "))")
                }
                lines.append("Clock    \(h.clockSynchronized ? "synchronised" : "NOT synchronised: times are from the box's own clock and are corrected when it syncs")")
            }
            let u = r.usage
            if let o = r.oldest, let n = r.newest {
                lines.append("Ring     \(Output.local(o)) → \(Output.local(n)) (\(Output.duration(n.seconds(since: o)))), \(u.segments) segments")
            } else {
                lines.append("Ring     empty")
            }
            lines.append("         \(Output.bytes(u.ringBytes)) of \(Output.bytes(u.budgetBytes)) budget, \(Output.bytes(u.freeBytes)) free (reserve \(Output.bytes(u.reserveBytes)))")
            lines.append("Pinned   \(Output.bytes(u.pinnedBytes)) of \(Output.bytes(u.pinnedCapBytes)) cap")
            if r.gapsLast24h.isEmpty {
                lines.append("Gaps     none in the last 24 h")
            } else {
                let total = r.gapsLast24h.reduce(0.0) { $0 + $1.end.seconds(since: $1.start) }
                lines.append("Gaps     \(r.gapsLast24h.count) in the last 24 h, \(Output.duration(total)) in all")
                for g in r.gapsLast24h.suffix(3) {
                    lines.append("         \(Output.local(g.start)) – \(Output.local(g.end)): \(g.reason)")
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}

extension String {
    init(format1 value: Double) {
        self = String((value * 10).rounded() / 10)
    }
}
