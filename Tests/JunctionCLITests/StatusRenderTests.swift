import Foundation
import Testing
@testable import JunctionCLI
@testable import Recorder
@testable import Ring
@testable import Uplink
import Update
import Media
import Activity

/// `junction status` as a technician sees it, on a ring made here: recorded, gap, flagged and
/// uploaded spans, with and without colour (a terminal, or a pipe / NO_COLOR).
@Suite struct StatusRenderTests {
    static let now = Timestamp(rfc3339: "2026-11-29T12:00:00Z")!

    static func at(_ hhmm: String) -> Timestamp { Timestamp(rfc3339: "2026-11-29T\(hhmm):00Z")! }

    static func report() -> JunctionCommand.Status.Report {
        var segments: [Segment] = []
        func add(_ from: String, _ to: String, flagged: Bool = false, uploaded: Bool = false) {
            var t = at(from)
            while t < at(to) {
                segments.append(Segment(id: Int64(segments.count + 1), camera: "cam1", path: "cam1/\(t.compact).mp4", start: t, end: t + 600,
                                        monotonicStartNanos: 0, bootID: "b", clockSynchronized: true, bytes: 300_000_000, sha256: "",
                                        codec: "h264", flagged: flagged, uploaded: uploaded, recovered: false))
                t = t + 600
            }
        }
        add("08:00", "09:00")
        add("09:30", "10:00")
        add("10:00", "10:10", flagged: true)
        add("10:10", "10:20", flagged: true, uploaded: true)
        add("10:20", "12:00")
        let gap = Gap(camera: "cam1", start: at("09:00"), end: at("09:30"), reason: "camera unreachable")
        var health = RecorderHealth(device: "thaithuy-0042", cameraID: "cam1", cameraURL: "rtsp://10.0.0.64:554/Streaming/Channels/101", now: at("09:30"))
        health.state = .recording
        health.stream = StreamInfo(videoCodec: "h264", width: 1920, height: 1080, fps: 25, audioCodec: nil, audioKept: false, audioNote: nil)
        health.fps = 25
        health.bitrateKbps = 4000
        health.lastPacketAt = now - 0.2
        health.durableUntil = now - 0.9
        health.reconnects = 1
        health.clockSynchronized = true
        var uplink = UplinkHealth(server: "https://commune.example.vn")
        uplink.connected = true
        uplink.lastHeartbeat = now - 30
        uplink.current = .init(segment: "cam1/20261129T100000.000Z.mp4", offset: 150_000_000, bytes: 300_000_000, bytesPerSecond: 125_000)
        let usage = Ring.Usage(ringBytes: Int64(segments.count) * 300_000_000, segments: Int64(segments.count), budgetBytes: 24_000_000_000,
                               filesystemBytes: 31_000_000_000, freeBytes: 6_500_000_000, reserveBytes: 512_000_000,
                               pinnedBytes: 300_000_000, pinnedCapBytes: 12_000_000_000, headroomBytes: 300_000_000)
        return .init(device: "thaithuy-0042", recording: true, problem: nil, advice: nil, health: health, usage: usage,
                     oldest: segments.first?.start, newest: segments.last?.end, gapsLast24h: [gap], uplink: uplink,
                     queue: .init(segments: 1, bytes: 300_000_000, oldestWaiting: at("10:00")),
                     timeline: .init(from: now - 4 * 3600, to: now, width: 48, segments: segments, gaps: [gap]))
    }

    @Test func plainForm() {
        setenv("TZ", "UTC", 1)
        tzset()
        let text = JunctionCommand.Status.render(Self.report(), now: Self.now, hasServer: true, colour: false, hours: 4)
        let golden = """
            Junction thaithuy-0042: RECORDING since 2026-11-29 09:30:00 (2 h 30 min)
            Camera   cam1  rtsp://10.0.0.64:554/Streaming/Channels/101
                     h264 1920x1080, 25.0 fps, 4000 kbit/s, last frame 0.2 s ago, 1 reconnects
            Saved    all but the last 0.7 s: a power cut now keeps everything recorded before
            Clock    synchronised
            Ring     2026-11-29 08:00:00 → 2026-11-29 12:00:00 (4 h 0 min), 21 segments
                     6.3 GB of 24 GB budget, 6.5 GB free (reserve 512 MB)
            Pinned   300 MB of 12 GB cap
            Last 4 h |############------######FFUU####################|
                      08:00       09:00       10:00       11:00       12:00
                     # recorded  - not recorded  F flagged, waiting  U uploaded
            Uplink   https://commune.example.vn: connected, last heartbeat 30 s ago
                     sending cam1/20261129T100000.000Z.mp4: 50 % of 300 MB at 125 kB/s
            Queue    1 segments, 300 MB waiting to upload, oldest from 2026-11-29 10:00:00
            Gaps     1 in the last 24 h, 30 min 00 s in all
                     2026-11-29 09:00:00 – 2026-11-29 09:30:00: camera unreachable
            """
        #expect(text == golden, "\n\(text)")
    }

    /// An A/B box back on its good slot after a bad release (issue 24): the release line says
    /// which slot runs, what the other holds and why the last update was given up.
    @Test func theReleaseLineAfterARollback() throws {
        setenv("TZ", "UTC", 1)
        tzset()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("status-release-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/esp/loader/entries", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/data/update", withIntermediateDirectories: true)
        try "title Junction 1.0.0 (slot a)\nversion 1\nsort-key junction\noptions junction.slot=a\n".write(toFile: dir + "/esp/loader/entries/junction-a.conf", atomically: true, encoding: .utf8)
        var state = UpdateState()
        state.failed = [ReleaseVersion("1.2.0")!]
        state.last = .init(version: "1.2.0", result: .rolledBack, reason: "recorded 0 of 3 segments within 900 s of boot", at: Self.at("11:00"))
        try state.save(path: dir + "/data/update/state.json")
        let standing = Installer.standing(release: "1.0.0", arch: "arm64", cmdline: "root=PARTUUID=1-02 ro junction.slot=a", esp: dir + "/esp",
                                          statePath: dir + "/data/update/state.json")
        #expect(standing.booted == "a" && standing.failed == ["1.2.0"] && standing.pending == nil)
        #expect(standing.slots == [.init(name: "a", release: "1.0.0", state: "good"), .init(name: "b", release: nil, state: "empty")])
        var report = Self.report()
        report.release = standing
        let lines = JunctionCommand.Status.render(report, now: Self.now, hasServer: true, colour: false, hours: 4).split(separator: "\n")
        #expect(lines.contains("Release  1.0.0 (arm64), slot a; slot b: empty; last update 1.2.0 rolled back 2026-11-29 11:00:00: recorded 0 of 3 segments within 900 s of boot"),
                "\(lines)")
        #expect(JunctionCommand.BoxFacts.summary(.init(release: "1.0.0", arch: "amd64", booted: nil)) == "1.0.0 (amd64), one root slot (no A/B updates on this card)")
    }

    /// With the activity index (issue 14): a row under the marks says when something moved.
    @Test func theTimelineSaysWhenSomethingMoved() {
        setenv("TZ", "UTC", 1)
        tzset()
        var report = Self.report()
        // 10:00–10:20 indexed: still, but much movement at 10:05 and a little at 10:16.
        var summary = ActivitySummary()
        for s in stride(from: 0, to: 1200, by: 2) {
            summary.entries.append(.init(deciseconds: UInt16(s * 10), score: s == 300 ? 200 : s == 960 ? 20 : 0))
        }
        report.timeline = .init(from: Self.now - 4 * 3600, to: Self.now, width: 48, segments: [], gaps: [],
                                activity: [.init(start: Self.at("10:00"), end: Self.at("10:20"), summary: summary)])
        let lines = JunctionCommand.Status.render(report, now: Self.now, hasServer: true, colour: false, hours: 4).split(separator: "\n").map(String.init)
        let row = lines.first { $0.hasPrefix("Moved") }
        #expect(row == "Moved    " + " " + String(repeating: " ", count: 24) + ".|.:" + String(repeating: " ", count: 20) + " ", "\(lines)")
        #expect(lines.contains("         . still  : something moved  | much moved (the activity index)"))
        #expect(!JunctionCommand.Status.render(Self.report(), now: Self.now, hasServer: true, colour: false, hours: 4).contains("Moved"),
                "no row where the index knows nothing")
    }

    @Test func colourForm() {
        setenv("TZ", "UTC", 1)
        tzset()
        let text = JunctionCommand.Status.render(Self.report(), now: Self.now, hasServer: true, colour: true, hours: 4)
        let line = text.split(separator: "\n").first { $0.hasPrefix("Last 4 h") }.map(String.init) ?? ""
        let green = "\u{1B}[32m█\u{1B}[0m", red = "\u{1B}[31m-\u{1B}[0m", yellow = "\u{1B}[33mF\u{1B}[0m", blue = "\u{1B}[34mU\u{1B}[0m"
        #expect(line == "Last 4 h |" + String(repeating: green, count: 12) + String(repeating: red, count: 6) + String(repeating: green, count: 6)
                + String(repeating: yellow, count: 2) + String(repeating: blue, count: 2) + String(repeating: green, count: 20) + "|")
        #expect(!text.replacingOccurrences(of: line, with: "").contains("\u{1B}"), "colour only in the timeline")
    }
}
