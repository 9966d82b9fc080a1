import Activity
import Evidence
import Foundation
import Logging
import Media
import Ring
import Testing
import Wire

/// Keyframes decoded for real (issue 14): FFmpeg draws a white box crossing a grey street, and a
/// still street whose light jumps and then creeps up; the decoder and the detector find the box
/// where and when it is, and nothing in the still street.
@Suite struct ActivityDecodeTests {
    static func clip(_ name: String, inputs: [String], filter: String) throws -> String {
        let path = NSTemporaryDirectory() + "junction-activity-\(name)-\(getpid()).mp4"
        var args = ["-y", "-loglevel", "error"]
        for i in inputs { args += ["-f", "lavfi", "-i", i] }
        args += ["-filter_complex", filter, "-t", "10", "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
                 "-preset", "veryfast", "-pix_fmt", "yuv420p", path]
        let r = try Rig.run("/usr/bin/ffmpeg", args, timeout: 120)
        try #require(r.status == 0, "\(r.stderr)")
        return path
    }

    @Test func aBoxCrossingTheStreetIsFoundWhereAndWhenItIs() throws {
        // Enters at 4 s, 120 px/s left to right at y 220–260 of 360: rows 5–6 of the 9-row grid.
        let path = try Self.clip("crossing", inputs: ["color=c=0x505050:s=640x360:r=25", "color=c=white:s=60x40:r=25"],
                                 filter: "[0][1]overlay=x='if(lt(t,4),-200,(t-4)*120)':y=220")
        defer { unlink(path) }
        var detector = ActivityDetector()
        var seen: [(Double, Observation)] = []
        try KeyframeDecoder.keyframes(inFile: path) { micros, picture in
            #expect(picture.width == 64 && picture.height == 36)
            seen.append((Double(micros) / 1e6, detector.observe(picture, microseconds: micros)))
        }
        #expect(seen.count == 10, "a keyframe a second: \(seen.map(\.0))")
        print("crossing: " + seen.map { t, o in "\(String(format: "%.0f", t))s:\(o.cells.count)c/\(o.score)" }.joined(separator: " "))
        for (t, o) in seen {
            if t < 3.5 {
                #expect(o.cells.isEmpty, "\(t) s: nothing has moved yet")
            } else if t > 4.5 && t < 9 {
                #expect(!o.cells.isEmpty && !o.lighting, "\(t) s: the box is in the picture")
                let column = Int(((t - 4) * 120 + 30) / 640 * 16)
                let cell = 5 * 16 + min(15, column)
                #expect(o.cells[cell] || o.cells[cell + 16], "\(t) s: in column \(column), rows 5–6")
                for c in 0..<ActivityGrid.cells where o.cells[c] {
                    #expect((4...7).contains(c / 16), "\(t) s: movement only along the box's path, not in row \(c / 16)")
                }
            }
        }
    }

    /// A request's preview (issue 14) from a real clip: a keyframe each second, at most one
    /// picture every 2 s, each a JPEG 320 px wide (its height in proportion), inside the range asked.
    @Test func aPreviewIsTheRangesKeyframesAsSmallJPEGs() throws {
        let path = try Self.clip("preview", inputs: ["testsrc2=s=1280x720:r=25"], filter: "[0]null")
        defer { unlink(path) }
        let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!
        let all = PreviewMaker.pictures(of: [.init(path: path, start: t0)], from: t0, to: t0 + 10)
        #expect(all.skipped.isEmpty)
        #expect(all.pictures.map(\.at) == [0, 2, 4, 6, 8].map { t0 + Double($0) })
        for p in all.pictures {
            #expect(p.jpeg.prefix(2) == [0xFF, 0xD8] && p.jpeg.suffix(2) == [0xFF, 0xD9])
            let size = Self.jpegSize(p.jpeg)
            #expect(size?.0 == 320 && size?.1 == 180, "\(String(describing: size))")
            #expect(p.jpeg.count < 40_000, "small: \(p.jpeg.count) bytes")
        }
        let part = PreviewMaker.pictures(of: [.init(path: path, start: t0)], from: t0 + 3, to: t0 + 7)
        #expect(part.pictures.map(\.at) == [t0 + 3, t0 + 5], "only the range asked, 2 s apart")
        let broken = PreviewMaker.pictures(of: [.init(path: "/nonexistent/seg.mp4", start: t0), .init(path: path, start: t0 + 10)],
                                           from: t0, to: t0 + 14)
        #expect(broken.skipped.count == 1 && broken.pictures.map(\.at) == [t0 + 10, t0 + 12], "a file that cannot be read is skipped, the rest goes")
    }

    /// The width and height in a baseline JPEG's SOF0 header.
    static func jpegSize(_ jpeg: [UInt8]) -> (Int, Int)? {
        var i = 2
        while i + 9 < jpeg.count {
            guard jpeg[i] == 0xFF else { return nil }
            let marker = jpeg[i + 1], length = Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3])
            if marker == 0xC0 { return (Int(jpeg[i + 7]) << 8 | Int(jpeg[i + 8]), Int(jpeg[i + 5]) << 8 | Int(jpeg[i + 6])) }
            i += 2 + length
        }
        return nil
    }

    /// `[activity] stream`: the box decodes the camera's sub-stream, not the recorded keyframes.
    /// The recorded stream here is a still street and the sub-stream (640×360) has the box
    /// crossing, so movement in the index can only come from the sub-stream. It is down when the
    /// box starts: recording goes on, the log says so, and activity begins when it comes up.
    @Test func activityComesFromTheSubStreamWhenOneIsGiven() async throws {
        let still = try Self.clip("still-main", inputs: ["color=c=0x505050:s=1280x720:r=25"], filter: "[0]null")
        let crossing = try Self.clip("crossing-sub", inputs: ["color=c=0x505050:s=640x360:r=25", "color=c=white:s=60x40:r=25"],
                                     filter: "[0][1]overlay=x='if(lt(t,4),-200,(t-4)*120)':y=220")
        defer { unlink(still); unlink(crossing) }
        let main = Camera(clip: still), sub = Camera(clip: crossing)
        try main.start()
        defer { main.stop(); sub.stop() }
        let dir = Rig.tempDir("substream")
        let config = try writeConfig(dir: dir, cameraURL: main.url, segmentSeconds: 2,
                                     extra: "[activity]\nenabled = true\nstream = \"\(sub.url)\"\n")
        let daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 20) { daemon.output.contains("sub-stream") && daemon.output.contains("cannot be read") }, "\(daemon.output.suffix(1500))")
        let before = try listSegments(config).count
        try sub.start()
        #expect(Rig.wait(seconds: 30) { daemon.output.contains("is back") }, "\(daemon.output.suffix(1500))")
        // 14 s of the 10-s loop: at least one whole crossing (4–9 s into it).
        #expect(Rig.wait(seconds: 40) { ((try? listSegments(config)) ?? []).count >= before + 7 }, "\(daemon.output.suffix(1500))")
        daemon.stop()
        struct Listed: Decodable {
            struct A: Decodable { var peak: Int; var moments: [M] }
            struct M: Decodable { var at: String }
            var activity: A?
        }
        let r = try Rig.junction(["list", "--config", config, "--activity", "--json"])
        let listed = try JSONDecoder().decode([Listed].self, from: Data(r.stdout.utf8))
        #expect(listed.count >= before + 7, "recording never waited for the sub-stream")
        let moving = listed.filter { !($0.activity?.moments.isEmpty ?? true) }
        print("sub-stream activity: " + listed.map { "\($0.activity.map { "\($0.peak)/\($0.moments.count)" } ?? "-")" }.joined(separator: " "))
        #expect(moving.count >= 2, "the crossing in the sub-stream is in the index, though the recorded stream is still")
        #expect(listed.prefix(max(0, before - 1)).allSatisfy { $0.activity?.moments.isEmpty ?? true }, "nothing moved before the sub-stream came up")
    }

    @Test func aStillStreetWhoseLightChangesStaysQuiet() throws {
        // The light jumps at 3 s (lamps on), then creeps up (dawn) from 5 s.
        let path = try Self.clip("light", inputs: ["color=c=0x505050:s=640x360:r=25"],
                                 filter: "[0]eq=brightness='if(lt(t,3),0,0.25)+if(gt(t,5),(t-5)*0.03,0)':eval=frame")
        defer { unlink(path) }
        var detector = ActivityDetector()
        var moved: [Double] = [], lighting: [Double] = []
        try KeyframeDecoder.keyframes(inFile: path) { micros, picture in
            let o = detector.observe(picture, microseconds: micros)
            if !o.cells.isEmpty { moved.append(Double(micros) / 1e6) }
            if o.lighting { lighting.append(Double(micros) / 1e6) }
        }
        #expect(moved.isEmpty, "movement read at \(moved) s")
        #expect(lighting.contains { $0 >= 2.5 && $0 <= 3.5 }, "the jump is seen as lighting: \(lighting)")
    }

    @Test func aFileThatIsNotVideoIsAClearError() throws {
        let path = NSTemporaryDirectory() + "junction-activity-junk-\(getpid()).mp4"
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        #expect(throws: MediaError.self) { try KeyframeDecoder.keyframes(inFile: path) { _, _ in } }
    }

    /// The recorder with `activity.enabled` (issue 14): a camera whose box crosses the street
    /// for 5 s of every 10 gets segments with movement and segments without; each summary is in
    /// the index and sealed in the segment's chain record; `reindex` brings it back from the files.
    /// Motion flags on a zone over the box's path pin only segments where it moved, and stop at
    /// the hourly cap (10 s here: the first crossing's ~5 s and a second of pre-roll, then the
    /// second crossing cut to what is left).
    @Test func theRecorderIndexesActivityAndSealsIt() async throws {
        let clip = try Self.clip("crossing-cam", inputs: ["color=c=0x505050:s=640x360:r=25", "color=c=white:s=60x40:r=25"],
                                 filter: "[0][1]overlay=x='if(lt(t,4),-200,(t-4)*120)':y=220")
        defer { unlink(clip) }
        let camera = Camera(clip: clip)
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("activity")
        let motion = """
            [activity]
            enabled = true
            [motion]
            enabled = true
            zones = [[0.0, 0.5, 1.0, 0.5, 1.0, 0.8, 0.0, 0.8]]
            min_seconds = 2
            pre_roll_seconds = 1
            post_roll_seconds = 0
            max_pin_seconds_per_hour = 10
            """
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2, extra: motion)
        let daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 40) { ((try? listSegments(config)) ?? []).count >= 10 }, "\(daemon.output.suffix(1500))")
        daemon.stop()

        struct Listed: Decodable {
            struct A: Decodable { var peak: Int; var cells: Int; var moments: [M] }
            struct M: Decodable { var at: String; var score: Int }
            var relative_path: String
            var activity: A?
        }
        func listed() throws -> [Listed] {
            let r = try Rig.junction(["list", "--config", config, "--activity", "--json"])
            try #require(r.status == 0, "\(r.stderr)")
            return try JSONDecoder().decode([Listed].self, from: Data(r.stdout.utf8))
        }
        let before = try listed()
        let indexed = before.filter { $0.activity != nil }
        #expect(indexed.count >= before.count - 1, "every segment but perhaps the last has its summary: \(indexed.count) of \(before.count)")
        print("recorded activity: " + before.map { "\($0.activity.map { "\($0.peak)/\($0.cells)/\($0.moments.count)" } ?? "-")" }.joined(separator: " "))
        let moving = indexed.filter { !($0.activity?.moments.isEmpty ?? true) }
        let still = indexed.filter { $0.activity?.moments.isEmpty ?? false }
        #expect(moving.count >= 2 && still.count >= 2, "\(moving.count) segments with movement, \(still.count) without")
        #expect(moving.allSatisfy { ($0.activity?.peak ?? 0) > 0 && ($0.activity?.cells ?? 0) > 0 })
        let text = try Rig.junction(["list", "--config", config, "--activity"])
        #expect(text.stdout.contains("moments with movement"), "\(text.stdout)")

        // Motion flags: only where the box moved, and no more than the hour's cap.
        let flagsRun = try Rig.junction(["flags", "--config", config, "--json"])
        let flags = try JSONDecoder().decode([Ring.Flag].self, from: Data(flagsRun.stdout.utf8)).filter { $0.source == .motion }
        let segments = try listSegments(config)
        try #require(segments.count == before.count && zip(segments, before).allSatisfy { $0.0.path.hasSuffix($0.1.relative_path) || $0.1.relative_path.hasSuffix($0.0.path) },
                     "the two listings name the same segments in the same order")
        print("motion flags: " + flags.map { "\($0.from)→\($0.to) \($0.reason ?? "")" }.joined(separator: "; "))
        #expect(!flags.isEmpty, "the crossings made motion flags: \(flagsRun.stdout)")
        let pinned = flags.reduce(0.0) { $0 + $1.pinTo.seconds(since: $1.pinFrom) }
        #expect(pinned <= 10.001, "motion flags pinned \(pinned) s, the cap is 10 s")
        for f in flags {
            #expect((2.0...6.0).contains(f.to.seconds(since: f.from)), "a crossing lasts about 5 s, or what the cap left of it: \(f.from)→\(f.to)")
            let covered = zip(segments, before).filter { seg, _ in
                guard let a = Timestamp(rfc3339: seg.start), let b = Timestamp(rfc3339: seg.end) else { return false }
                return b > f.from && a < f.to
            }
            #expect(!covered.isEmpty && covered.allSatisfy { !($0.1.activity?.moments.isEmpty ?? true) },
                    "flag \(f.id) pins only segments where something moved: \(covered.map { "\($0.0.path) \($0.1.activity?.moments.count ?? -1)" })")
        }
        // The technician's check of the zones: drawn over a picture of the recording.
        let shot = dir + "/zones.jpg"
        let snap = try Rig.junction(["snapshot", "--config", config, "--at", segments[2].start, "--zones", "-o", shot])
        #expect(snap.status == 0 && snap.stdout.contains("Zones in red:") && snap.stdout.contains("of 144 cells"), "\(snap.stdout) \(snap.stderr)")
        let raw = try Rig.run("/usr/bin/ffmpeg", ["-y", "-loglevel", "error", "-i", shot, "-f", "rawvideo", "-pix_fmt", "rgb24", dir + "/zones.rgb"], timeout: 30)
        try #require(raw.status == 0, "\(raw.stderr)")
        let rgb = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/zones.rgb")))
        try #require(rgb.count == 640 * 360 * 3, "\(rgb.count) bytes of RGB")
        func pixel(_ x: Int, _ y: Int) -> (r: Int, g: Int, b: Int) { let o = (y * 640 + x) * 3; return (Int(rgb[o]), Int(rgb[o + 1]), Int(rgb[o + 2])) }
        let inZone = pixel(20, 265), outside = pixel(300, 60), line = pixel(40, 60), beside = pixel(60, 60)
        #expect(inZone.r - inZone.g > 30, "row 6 is in the zone, tinted red: \(inZone)")
        #expect(abs(outside.r - outside.g) < 12, "row 1 is not: \(outside)")
        #expect(line.g * 10 < beside.g * 6, "the grid's line between columns 0 and 1: \(line) beside \(beside)")

        let status = try Rig.run(Rig.junction, ["status", "--config", config, "--hours", "1"], environment: ["TZ": ""]).stdout
        // Times in the box's zone ([device] time_zone, Asia/Ho_Chi_Minh by default: UTC+7), as the schedule reads them.
        let firstStart = try #require(Timestamp(rfc3339: segments[0].start))
        let c = Timestamp(milliseconds: firstStart.milliseconds + 7 * 3_600_000).civil
        let two = { (v: Int) in v < 10 ? "0\(v)" : "\(v)" }
        let shown = "\(c.year)-\(two(c.month))-\(two(c.day)) \(two(c.hour)):\(two(c.minute)):\(two(c.second))"
        #expect(status.contains("Ring     \(shown)"), "the ring's start in the box's zone, \(shown): \(status)")
        #expect(status.split(separator: "\n").contains { $0.hasPrefix("Moved") && ($0.contains("|") || $0.contains(":")) }
                && status.contains("Motion   2 flags"), "status draws when something moved and what motion did: \(status)")
        let health = (try statusJSON(config)["health"] as? [String: Any])?["motion"] as? [String: Any]
        let capped = health?["capped"] as? Int ?? 0, made = health?["flags"] as? Int ?? 0
        #expect(made == flags.count && (capped >= 1 || flags.contains { $0.reason?.contains("hourly cap") == true }),
                "the second crossing is cut or left out by the cap: \(String(describing: health))")

        // Sealed: each segment's chain record carries the summary the index holds.
        let ring = try await Ring.open(.init(root: dir + "/data", budget: .bytes(1 << 30), reserveBytes: 0), creating: false,
                                       logger: Logger(label: "t"))
        let records = try await ring.chain().compactMap(\.record).filter { $0.kind == .segment }
        for a in try await ring.activity() {
            let record = records.first { $0.file == (a.path as NSString).lastPathComponent }
            #expect(record?.activity == a.summary.hex, "\(a.path): sealed with its activity")
        }
        await ring.close()

        // The files alone bring it back.
        let re = try Rig.junction(["reindex", "--config", config])
        #expect(re.status == 0, "\(re.stdout) \(re.stderr)")
        let after = try listed()
        #expect(after.map(\.activity?.moments.count) == before.map(\.activity?.moments.count), "reindex keeps the activity index")
    }
}
