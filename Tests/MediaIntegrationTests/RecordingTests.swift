import Foundation
import Testing

/// End to end against a real RTSP server (GStreamer) and the real `junction` binary.
@Suite(.timeLimit(.minutes(5)))
struct RecordingTests {
    /// 60 s recorded → 10 ± 2 s segments that each start on a keyframe, have no timestamp gap
    /// beyond one frame inside or between them, decode, and hash to what the index says.
    @Test func records60SecondsIntoContinuousSegments() throws {
        // Longer than the recording: a looping clip has a timestamp jump where it wraps.
        let camera = Camera(clip: try Rig.clip(bitrate: "1M", size: "640x360", seconds: 75), extra: ["--audio"])
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("record60")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 10)
        let daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 20) { ((try? listSegments(config)) ?? []).count >= 1 }, "recording did not start: \(daemon.output)")
        let first = try listSegments(config)[0]
        _ = Rig.wait(seconds: 70) { Date().timeIntervalSince1970 - parseTime(first.start) >= 61 }
        #expect(daemon.stop() == 0, "SIGTERM must end the daemon cleanly")

        let segments = try listSegments(config)
        #expect(segments.count >= 6)
        let total = parseTime(segments.last!.end) - parseTime(segments.first!.start)
        #expect(total >= 60)
        for (i, s) in segments.enumerated() {
            if i < segments.count - 1 {
                #expect(s.duration_seconds >= 8 && s.duration_seconds <= 12, "segment \(i) lasts \(s.duration_seconds) s")
                let next = segments[i + 1]
                let hole = parseTime(next.start) - parseTime(s.end)
                #expect(abs(hole) <= 0.1, "between segment \(i) and \(i + 1): \(hole) s")
            }
            // First video packet is a keyframe; DTS steps never exceed one frame (40 ms).
            let packets = try Rig.ffprobe(["-select_streams", "v", "-show_entries", "packet=dts_time,flags", "-of", "csv=p=0", s.path])
                .split(separator: "\n").map { $0.split(separator: ",") }
            #expect(packets.first?.last?.hasPrefix("K") == true, "\(s.path) must start on a keyframe")
            let dts = packets.compactMap { Double($0[0]) }
            let worst = zip(dts, dts.dropFirst()).map { $1 - $0 }.max() ?? 0
            #expect(worst <= 0.041, "\(s.path): a \(worst) s jump inside the segment")
            // Decodes, with about 25 frames a second.
            let frames = try Rig.ffprobe(["-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", s.path])
            let n = Int(frames.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(abs(Double(n) - s.duration_seconds * 25) <= 2, "\(s.path): \(n) frames for \(s.duration_seconds) s")
            let sha = try Rig.run("/usr/bin/sha256sum", [s.path]).stdout.prefix(64)
            #expect(String(sha) == s.sha256)
        }
        let tags = try Rig.ffprobe(["-show_entries", "stream=codec_name", "-of", "csv=p=0", segments[0].path])
        #expect(tags.contains("h264") && tags.contains("aac"), "AAC audio is kept: \(tags)")
        let check = try Rig.junction(["check", "--config", config, "--deep"])
        #expect(check.status == 0, "\(check.stdout)")
    }

    /// The camera goes away and comes back: recording resumes within 5 s and the gap is indexed.
    @Test func cameraRestartResumesAndRecordsGap() throws {
        let clip = try Rig.clip()
        let port = Rig.freePort()
        var camera = Camera(clip: clip, port: port)
        try camera.start()
        let dir = Rig.tempDir("restart")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 4)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 25) { ((try? listSegments(config)) ?? []).count >= 2 }, "\(daemon.output)")
        camera.stop()
        let down = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 10)
        camera = Camera(clip: clip, port: port)
        try camera.start()
        defer { camera.stop() }
        let back = Date().timeIntervalSince1970
        var resumed: Double?
        _ = Rig.wait(seconds: 20) {
            let s = (try? statusJSON(config)) ?? [:]
            let health = s["health"] as? [String: Any]
            if let state = health?["state"] as? String, state == "recording", let since = health?["since"] as? String,
               parseTime(since) > back - 1 {
                resumed = parseTime(since)
                return true
            }
            return false
        }
        let r = try #require(resumed, "recording did not resume: \(daemon.output)")
        #expect(r - back <= 5, "resumed \(r - back) s after the camera returned")
        // Let the next segment land, then look at the gap.
        _ = Rig.wait(seconds: 10) { ((try? listSegments(config)) ?? []).contains { parseTime($0.start) >= r - 0.5 } }
        let status = try statusJSON(config)
        let gaps = status["gaps_last_24h"] as? [[String: Any]] ?? []
        #expect(gaps.count == 1, "\(gaps)")
        if let g = gaps.first {
            let start = parseTime(g["start"] as! String), end = parseTime(g["end"] as! String)
            #expect(abs(start - down) < 4, "gap starts at the outage")
            #expect(end >= back - 1 && end <= r + 1, "gap ends when recording resumed")
            #expect((g["reason"] as? String)?.isEmpty == false)
        }
    }

    /// SIGKILL mid-segment: on restart the torn segment is cut back to its last whole fragment,
    /// indexed, playable; at most ~2 s are lost; `junction check` passes.
    @Test func sigkillMidSegmentRecovers() throws {
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("sigkill")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 10)
        let daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 1 }, "\(daemon.output)")
        Thread.sleep(forTimeInterval: 5.5)  // well into the second segment
        let killedAt = Date().timeIntervalSince1970
        daemon.stop(signal: SIGKILL)
        let before = try Rig.junction(["check", "--config", config])
        #expect(before.status == 1 && before.stdout.contains("stray_file"), "the torn segment is not indexed yet: \(before.stdout)")

        try daemon.start()
        #expect(Rig.wait(seconds: 20) { ((try? statusJSON(config))?["recording"] as? Bool) == true })
        daemon.stop()
        let check = try Rig.junction(["check", "--config", config, "--deep"])
        #expect(check.status == 0, "\(check.stdout)")
        let recovered = try listSegments(config).filter(\.recovered)
        let torn = try #require(recovered.first, "the torn segment must be indexed: \(daemon.output)")
        #expect(recovered.count == 1)
        #expect(killedAt - parseTime(torn.end) <= 2.6, "lost \(killedAt - parseTime(torn.end)) s")
        #expect(torn.duration_seconds >= 3)
        let decode = try Rig.run("/usr/bin/ffprobe", ["-v", "error", "-count_frames", "-select_streams", "v",
                                                      "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", torn.path])
        #expect(decode.status == 0 && decode.stderr.isEmpty, "the repaired segment plays: \(decode.stderr)")
        // SIGKILL leaves whole fragments (each is flushed when it closes); a power cut can
        // leave a torn one. Either way recovery indexes the file and says so.
        let name = String(torn.path.split(separator: "/").last!)
        #expect(daemon.output.contains("recovery: orphan_indexed: ") || daemon.output.contains("recovery: torn_segment_repaired: "))
        #expect(daemon.output.contains(name))
    }

    /// H.265 is remuxed as `hvc1` (what browsers and Apple players want).
    @Test func h265IsTaggedHvc1() throws {
        let camera = Camera(clip: try Rig.clip(codec: "h265", bitrate: "1M", size: "640x360", seconds: 10), extra: ["--codec", "h265"])
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("h265")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2)
        let daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 2 }, "\(daemon.output)")
        daemon.stop()
        let s = try listSegments(config)[0]
        let tag = try Rig.ffprobe(["-select_streams", "v", "-show_entries", "stream=codec_name,codec_tag_string", "-of", "csv=p=0", s.path])
        #expect(tag.contains("hevc") && tag.contains("hvc1"), "\(tag)")
    }
}
