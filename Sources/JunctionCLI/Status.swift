import Activity
import Evidence
import ArgumentParser
import Config
import Recorder
import Ring
import Update
import Uplink
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension JunctionCommand {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the box is doing: recording, camera, ring, gaps.",
            discussion: """
                Exit status 0 when recording, 1 when not (the first line says why).
                Example:
                  junction status
                  junction status --hours 6        # the timeline of the last 6 hours
                  junction status --watch          # refresh every 2 s (Ctrl-C to stop)
                  junction status --json | jq .recording
                Timeline: # recorded, - not recorded (gap), F flagged (waiting to upload), U uploaded,
                blank: before the ring's oldest footage.
                """)

        @OptionGroup var options: BoxOptions
        @Flag(help: "Print JSON for scripts.") var json = false
        @Option(parsing: .unconditional, help: "Hours of timeline to draw (1–168).") var hours = 24
        @Flag(help: "Refresh the screen every 2 s until interrupted.") var watch = false

        func validate() throws {
            guard (1...168).contains(hours) else { throw ValidationError("--hours must be 1 to 168") }
        }

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
            var uplink: UplinkHealth?
            var queue: Queue
            var timeline: Timeline
            /// Segment files a repair or the uplink found damaged, kept in quarantine/.
            var damaged: [String] = []
            /// The device key and the chain (issue 13).
            var evidence: EvidenceState? = nil
            /// The release, its slot, the other slot and the last update (issue 24).
            var release: FleetUpdate.Report? = nil
            /// The commune's settings over junction.toml, in words (issue 24, item 7), and the state.
            var settings: String? = nil
            var settingsState: RemoteSettings.Report? = nil

            struct EvidenceState: Encodable {
                var publicKey: String?
                var fingerprint: String?
                var chainRecords: Int64
                enum CodingKeys: String, CodingKey { case publicKey = "public_key", fingerprint, chainRecords = "chain_records" }
            }

            struct Queue: Encodable {
                var segments: Int
                var bytes: Int64
                var oldestWaiting: Timestamp?
                enum CodingKeys: String, CodingKey { case segments, bytes, oldestWaiting = "oldest_waiting" }
            }

            enum CodingKeys: String, CodingKey {
                case device, recording, problem, advice, health, usage, oldest, newest, uplink, queue, timeline, damaged, evidence, release, settings
                case gapsLast24h = "gaps_last_24h", settingsState = "settings_state"
            }
        }

        /// The last hours as cells, each the strongest mark of what it holds.
        struct Timeline: Encodable {
            enum Mark: String, Encodable { case none, gap, recorded, uploaded, flagged }
            var from: Timestamp
            var to: Timestamp
            var cellSeconds: Double
            var cells: [Mark]
            /// Per cell, the busiest movement the activity index saw (issue 14): 255 nothing known,
            /// 0 still, else 1–254. Nil when the index knows nothing of the window.
            var movement: [UInt8]?
            enum CodingKeys: String, CodingKey { case from, to, cells, movement, cellSeconds = "cell_seconds" }

            init(from: Timestamp, to: Timestamp, width: Int, segments: [Segment], gaps: [Gap], activity: [ActivityTimeline.Covered] = []) {
                self.from = from
                self.to = to
                if !activity.isEmpty, width > 0 {
                    let first = Timestamp(milliseconds: from.milliseconds / 60_000 * 60_000)
                    let count = Int(to.milliseconds(since: first) / 60_000) + 1
                    let minutes = ActivityTimeline.minutes(from: first, count: count, segments: activity)
                    let unknown = Heartbeat.ActivityMinutes.unknown
                    var cells = [UInt8](repeating: unknown, count: width)
                    let cellMs = Double(to.milliseconds(since: from)) / Double(width)
                    for (m, level) in minutes.enumerated() where level != unknown {
                        let startMs = Double(first.milliseconds(since: from)) + Double(m) * 60_000
                        let a = max(0, Int(saturating: startMs / cellMs)), b = min(width - 1, max(0, Int(saturating: (startMs + 59_999) / cellMs)))
                        guard a <= b else { continue }  // a minute that starts at the window's end
                        for k in a...b {
                            cells[k] = cells[k] == unknown ? level : max(cells[k], level)
                        }
                    }
                    movement = cells.contains { $0 != unknown } ? cells : nil
                }
                let cellSeconds = to.seconds(since: from) / Double(width)
                self.cellSeconds = cellSeconds
                var cells = [Mark](repeating: .none, count: width)
                func paint(_ a: Timestamp, _ b: Timestamp, _ mark: Mark) {
                    let i = Int(saturating: (a.seconds(since: from) / cellSeconds).rounded(.down))
                    let j = Int(saturating: (b.seconds(since: from) / cellSeconds).rounded(.up))
                    for k in max(0, i)..<min(width, max(j, i + 1)) where k >= 0 {
                        if Self.rank(mark) > Self.rank(cells[k]) { cells[k] = mark }
                    }
                }
                for g in gaps where g.end > from { paint(g.start, g.end, .gap) }
                for s in segments where s.end > from {
                    paint(s.start, s.end, s.flagged && !s.uploaded ? .flagged : s.uploaded ? .uploaded : .recorded)
                }
                self.cells = cells
            }

            static func rank(_ m: Mark) -> Int {
                switch m { case .none: 0; case .gap: 1; case .recorded: 2; case .uploaded: 3; case .flagged: 4 }
            }

            /// One line of marks (coloured blocks on a colour terminal), and a line of local hours.
            func render(colour: Bool) -> [String] {
                let line = cells.map { m -> String in
                    if colour {
                        switch m {
                        case .none: return " "
                        case .gap: return "\u{1B}[31m-\u{1B}[0m"
                        case .recorded: return "\u{1B}[32m█\u{1B}[0m"
                        case .uploaded: return "\u{1B}[34mU\u{1B}[0m"
                        case .flagged: return "\u{1B}[33mF\u{1B}[0m"
                        }
                    }
                    switch m { case .none: return " "; case .gap: return "-"; case .recorded: return "#"; case .uploaded: return "U"; case .flagged: return "F" }
                }.joined()
                var labels = [Character](repeating: " ", count: cells.count + 6)
                let step = max(1, cells.count / 4)
                for k in stride(from: 0, through: cells.count, by: step) {
                    let t = from + Double(k) * cellSeconds
                    let text = Array(String(Output.local(t).dropFirst(11).prefix(5)))
                    for (n, c) in text.enumerated() where k + n < labels.count { labels[k + n] = c }
                }
                return ["|" + line + "|", " " + String(labels).trimmingSpaces]
            }

            /// The movement row under the marks: "." still, ":" something moved, "|" much moved
            /// (a quarter or more of a cell's pixels at once), blank where nothing is known.
            func renderMovement() -> String? {
                guard let movement else { return nil }
                return " " + movement.map { level -> String in
                    switch level {
                    case Heartbeat.ActivityMinutes.unknown: " "
                    case 0: "."
                    case 1..<64: ":"
                    default: "|"
                    }
                }.joined() + " "
            }
        }

        func run() async throws {
            let config = try options.load()
            guard watch else {
                let (report, text) = try await snapshot(config)
                print(json ? try Output.json(report) : text)
                if !report.recording { throw ExitCode(1) }
                return
            }
            for _ in 0..<1_000_000 {  // until Ctrl-C (bounded all the same)
                let (report, text) = try await snapshot(config)
                print(json ? try Output.json(report) : "\u{1B}[H\u{1B}[2J" + text + "\n\n(refreshing every 2 s; Ctrl-C to stop)")
                try await Task.sleep(for: .seconds(2))
            }
        }

        func snapshot(_ config: JunctionConfiguration) async throws -> (Report, String) {
            let ring = try await config.openRing(readOnly: true)
            let now = Timestamp.now()
            let daemon = DaemonState.read(config, now: now)
            let usage = try await ring.usage()
            let all = try await ring.segments(camera: config.camera.id)
            let gaps = try await ring.gaps(camera: config.camera.id, from: now + -86400, to: nil)
            let windowStart = now + -Double(hours) * 3600
            let windowGaps = hours > 24 ? try await ring.gaps(camera: config.camera.id, from: windowStart, to: nil) : gaps
            let queued = try await ring.uploadQueue(limit: 100_000, now: .latest)
            let damaged = (try? await ring.quarantined()) ?? []
            let head = (try? await ring.chainHead()) ?? nil
            let activity = ((try? await ring.activity(camera: config.camera.id, from: windowStart, to: now)) ?? [])
                .map { ActivityTimeline.Covered(start: $0.start, end: $0.end, summary: $0.summary) }
            let deviceKey = DeviceKey.readPublic(at: config.devicePublicKeyPath)
            await ring.close()

            var problem: String? = daemon.note
            var advice: String? = daemon.running ? nil : "start it: systemctl start junction (or junction run --config \(options.config))"
            if daemon.running, let h = daemon.health, h.state != .recording {
                problem = h.lastError.map { "not recording: \($0)" } ?? "not recording yet (\(h.state.rawValue))"
                advice = h.lastErrorCode.map(Self.advice(forCode:))
            }
            let recording = daemon.running && daemon.health?.state == .recording
            let uplink = config.server == nil ? nil : FileManager.default.contents(atPath: config.uplinkStatusPath)
                .flatMap { try? JSONDecoder().decode(UplinkHealth.self, from: $0) }
            let width = 48
            var report = Report(device: config.device.id, recording: recording, problem: recording ? nil : problem,
                                advice: recording ? nil : advice, health: daemon.health, usage: usage,
                                oldest: all.first?.start, newest: all.last?.end, gapsLast24h: gaps,
                                uplink: daemon.running ? uplink : nil,
                                queue: .init(segments: queued.count, bytes: queued.reduce(0) { $0 + $1.segment.bytes },
                                             oldestWaiting: queued.map(\.segment.start).min()),
                                timeline: Timeline(from: windowStart, to: now, width: width, segments: all.filter { $0.end > windowStart },
                                                   gaps: windowGaps, activity: activity), damaged: damaged,
                                evidence: .init(publicKey: deviceKey?.rawRepresentation.base64EncodedString(),
                                                fingerprint: deviceKey.map(DeviceKey.fingerprint(of:)),
                                                chainRecords: head?.seq ?? 0),
                                release: BoxFacts.standing(storage: config.storage.path))
            let settings = SettingsState.load(path: SettingsState.path(storage: config.storage.path))
            report.settings = BoxSettings.summary(settings, config: options.config)
            report.settingsState = settings.report
            let colour = isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
                && ProcessInfo.processInfo.environment["TERM"] != "dumb"
            return (report, Self.render(report, now: now, hasServer: config.server != nil, colour: colour, hours: hours))
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

        static func render(_ r: Report, now: Timestamp, hasServer: Bool = false, colour: Bool = false, hours: Int = 24) -> String {
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
                        cam += ", \(String(format1: h.fps)) fps, \(Int(saturating: h.bitrateKbps)) kbit/s"
                    }
                }
                if let last = h.lastPacketAt, r.recording {
                    cam += ", last frame \(String(format1: max(0, now.seconds(since: last)))) s ago"
                }
                cam += ", \(h.reconnects) reconnects"
                lines.append(cam)
                // What a power cut now would keep: everything up to the last synced fragment, i.e.
                // all but the last this-many seconds received (both from the same statistics, so
                // the age of status.json does not count).
                if let durable = h.durableUntil, let last = h.lastPacketAt, r.recording {
                    lines.append("Saved    all but the last \(String(format1: max(0, last.seconds(since: durable)))) s: a power cut now keeps everything recorded before")
                }
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
            if let e = r.evidence {
                lines.append(e.fingerprint.map { "Evidence sealed with device key \($0) (\(e.chainRecords) chain records)" }
                             ?? "Evidence NOT SEALED: no device key yet (the recorder makes it when it starts)")
            }
            if let m = r.health?.motion {
                var line = "Motion   \(m.flags) flag\(m.flags == 1 ? "" : "s") since the recorder started"
                if let at = m.lastFlagAt { line += " (last \(Output.local(at)))" }
                line += "; \(Int(saturating: m.usedSeconds)) s of the \(Int(saturating: m.capSeconds)) s hourly cap pinned"
                if m.capped > 0 { line += "; \(m.capped) movement\(m.capped == 1 ? "" : "s") not flagged: the cap was reached" }
                lines.append(line)
            }
            if !r.damaged.isEmpty {
                lines.append("DAMAGED  \(r.damaged.count) segment file\(r.damaged.count == 1 ? "" : "s") in quarantine/ (the card changed them after they were written): junction check lists them; copy them off, then replace the card")
            }
            let t = r.timeline.render(colour: colour)
            lines.append("Last \(hours) h " + t[0])
            if let moved = r.timeline.renderMovement() {
                lines.append("Moved" + String(repeating: " ", count: max(0, "Last \(hours) h ".count - 5)) + moved)
            }
            lines.append(String(repeating: " ", count: "Last \(hours) h ".count) + t[1])
            lines.append("         # recorded  - not recorded  F flagged, waiting  U uploaded")
            if r.timeline.movement != nil { lines.append("         . still  : something moved  | much moved (the activity index)") }
            if !hasServer {
                lines.append("Uplink   none configured ([server] in junction.toml): flagged footage stays on the card")
            } else if let up = r.uplink {
                var head = "Uplink   \(up.server): "
                switch up.connected {
                case true?: head += "connected"
                case false?: head += "NOT connected"
                case nil: head += "not contacted yet"
                }
                if let hb = up.lastHeartbeat { head += ", last heartbeat \(Output.duration(max(0, now.seconds(since: hb)))) ago" }
                lines.append(head)
                if let c = up.current {
                    let pct = c.bytes > 0 ? Int(saturating: Double(c.offset) * 100 / Double(c.bytes)) : 0
                    lines.append("         sending \(c.segment): \(pct) % of \(Output.bytes(c.bytes)) at \(Output.bytes(Int64(saturating: c.bytesPerSecond)))/s")
                }
                if let e = up.lastError, up.connected != true { lines.append("         last error: \(e)") }
            } else {
                lines.append("Uplink   \(r.recording ? "starting" : "not running (the recorder is stopped)")")
            }
            if r.queue.segments > 0 {
                lines.append("Queue    \(r.queue.segments) segments, \(Output.bytes(r.queue.bytes)) waiting to upload\(r.queue.oldestWaiting.map { ", oldest from \(Output.local($0))" } ?? "")")
            } else if hasServer {
                lines.append("Queue    empty: everything flagged has reached the commune")
            }
            if let release = r.release { lines.append("Release  " + BoxFacts.summary(release)) }
            if let settings = r.settings { lines.append("Settings " + settings) }
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

