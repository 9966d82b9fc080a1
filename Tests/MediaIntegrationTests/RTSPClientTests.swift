import Foundation
import Testing
import Media
import RTSP

/// Junction's own RTSP client (issue 25) against the GStreamer test camera: the session set up
/// over TCP, H.264 and H.265 access units at the camera's rate with keyframes, a few large reads
/// instead of a poll and recvs per packet, sign-in by Digest, and TEARDOWN. Not yet the recorder's
/// reader: these show the client alone.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct RTSPClientTests {
    func read(_ codec: String, seconds: Double = 4, extra: [String] = [], user: String? = nil) throws -> (units: [VideoDepacketizer.AccessUnit], client: RTSPConnection) {
        let camera = Camera(clip: try Rig.clip(codec: codec), extra: ["--codec", codec] + extra)
        try camera.start()
        defer { camera.stop() }
        let url = user.map { camera.url.replacingOccurrences(of: "rtsp://", with: "rtsp://\($0)@") } ?? camera.url
        let client = try RTSPConnection(options: RTSPConnection.Options(url: url))
        var units: [VideoDepacketizer.AccessUnit] = []
        let started = Date()
        while Date().timeIntervalSince(started) < seconds, units.count < 10_000 { units.append(try client.next()) }
        client.close()
        return (units, client)
    }

    func check(_ units: [VideoDepacketizer.AccessUnit], _ client: RTSPConnection, seconds: Double = 4) {
        let stamps = units.map(\.timestamp)
        let span = Double((stamps.max() ?? 0) - (stamps.min() ?? 0)) / 90_000
        let fps = Double(units.count - 1) / max(span, 0.001)
        #expect(units.count > 40, "\(units.count) access units in \(seconds) s")
        #expect(abs(fps - 25) < 3, "\(fps) pictures a second on the RTP clock, the clip is 25")
        #expect(units.contains { $0.isKeyframe }, "a keyframe within the first seconds")
        // The clip has B-frames: RTP timestamps are presentation times, in decode order, so not
        // monotonic; each picture has its own, and they advance with the stream.
        #expect(Set(units.map(\.timestamp)).count == units.count, "a timestamp given twice")
        #expect((units.last?.timestamp ?? 0) > (units.first?.timestamp ?? 0))
        // Decode times for the muxer: rising, none after its picture's presentation (2 B-frames).
        // The depth the stream needs is the least one with nothing too deep (x264's -bf 2: 2).
        let needed = (0...16).first { depth in
            var t = DecodeTimeline(depth: depth)
            for u in units { _ = t.decodeTime(pts: u.timestamp) }
            return t.tooDeep == 0
        }
        var timeline = DecodeTimeline(depth: 16)
        let dts = units.map { timeline.decodeTime(pts: $0.timestamp) }
        #expect(zip(dts, dts.dropFirst()).allSatisfy { $0 < $1 } && timeline.tooDeep == 0)
        print("rtsp client: decode times need a reorder depth of \(needed.map(String.init) ?? "more than 16")")
        #expect(client.depacketizer.droppedAccessUnits == 0, "\(client.depacketizer.lastDrop ?? "")")
        #expect(client.depacketizer.sps != nil && client.depacketizer.pps != nil)
        // A 2 Mbit/s camera: dozens of RTP packets a second; the client reads them in a few large pieces.
        let readsPerSecond = Double(client.reads) / seconds
        #expect(readsPerSecond < 150, "\(readsPerSecond) reads a second for \(client.bytesRead) bytes")
        // GStreamer's rtpbin sends a sender report about every 5 s; the first comes at once.
        #expect(client.senderReports >= 1, "no RTCP sender report in \(seconds) s")
        if let r = client.senderReport { #expect(abs(r.unixMilliseconds - Int64(Date().timeIntervalSince1970 * 1000)) < 60_000, "the camera's clock is this machine's") }
        print("rtsp client: \(units.count) access units, \(client.reads) reads for \(client.bytesRead) bytes in \(seconds) s")
    }

    @Test func h264() throws {
        let (units, client) = try read("h264")
        check(units, client)
        #expect(units.first { $0.isKeyframe }!.nalUnits.contains { $0[0] & 0x1F == 5 })
    }

    @Test func h265() throws {
        let (units, client) = try read("h265")
        check(units, client)
        #expect(client.depacketizer.codec == .h265 && client.depacketizer.vps != nil)
    }

    @Test func digestSignIn() throws {
        // The camera asks for Digest only (GStreamer's RTSPAuth with MD5 digest).
        let (units, client) = try read("h264", seconds: 2, extra: ["--user", "admin", "--password", "s3cr:t", "--digest"], user: "admin:s3cr%3At")
        #expect(units.count > 20 && client.depacketizer.droppedAccessUnits == 0)
        let camera = Camera(clip: try Rig.clip(), extra: ["--user", "admin", "--password", "right", "--digest"])
        try camera.start()
        defer { camera.stop() }
        do {
            _ = try RTSPConnection(options: .init(url: camera.url.replacingOccurrences(of: "rtsp://", with: "rtsp://admin:wrong@")))
            Issue.record("a wrong password was taken")
        } catch {
            #expect(error.message.contains("refused the user name and password"), "\(error.message)")
        }
        do {
            _ = try RTSPConnection(options: .init(url: camera.url))
            Issue.record("no password was taken")
        } catch {
            #expect(error.message.contains("asks for a user name and password"), "\(error.message)")
        }
    }

    /// The bridge to the muxer: a segment recorded from the Swift reader (not libavformat's) is
    /// a fragmented MP4 that ffprobe reads at the camera's size, every picture decodes, and its
    /// length is the time recorded. Both codecs, with their B-frames.
    @Test(arguments: ["h264", "h265"])
    func aSegmentRecordedThroughTheReaderPlays(codec: String) throws {
        let camera = Camera(clip: try Rig.clip(codec: codec), extra: ["--codec", codec])
        try camera.start()
        defer { camera.stop() }
        let input = try RTSPInput(url: camera.url, displayURL: camera.url, interrupter: Interrupter())
        #expect(input.info.width == 1280 && input.info.height == 720, "\(input.info)")
        let packet = Packet()
        try input.read(into: packet)
        #expect(packet.isKeyframe, "the first packet is the keyframe read while opening")
        let path = Rig.tempDir("rtsp-input") + "/segment.mp4"
        let muxer = try SegmentMuxer(path: path, input: input, originMicroseconds: try #require(packet.dtsMicroseconds), comment: "junction/1 test")
        var pictures = 0
        let started = Date()
        while Date().timeIntervalSince(started) < 6 {
            try muxer.write(packet)
            pictures += 1
            try input.read(into: packet)
        }
        let finished = try muxer.finish()
        #expect(finished.droppedPackets == 0, "\(finished.droppedPackets) packets dropped by the muxer")
        let probe = try Rig.ffprobe(["-count_frames", "-select_streams", "v", "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                                     "-of", "csv=p=0", path]).trimmingCharacters(in: .whitespacesAndNewlines)
        let fields = probe.split(separator: ",").map(String.init)
        #expect(fields.prefix(3) == [codec == "h264" ? "h264" : "hevc", "1280", "720"], "ffprobe: \(probe)")
        // x265 starts GOPs open (CRA): the B-pictures that lead the segment's first one refer to
        // the GOP before it, so a decoder skips them (at most the stream's reorder depth, 6).
        let decoded = Int(fields.last ?? "") ?? -1
        let leading = codec == "h265" ? 6 : 0
        #expect(decoded <= pictures && decoded >= pictures - leading, "ffprobe decoded \(decoded) of the \(pictures) pictures written (\(finished.bytes) bytes)")
        let decode = try Rig.run("/usr/bin/ffmpeg", ["-v", "error", "-i", path, "-f", "null", "-"])
        #expect(decode.status == 0 && decode.stderr.isEmpty, "\(decode.stderr.prefix(500))")
        print("rtsp input: \(codec) \(pictures) pictures, \(finished.bytes) bytes, \(input.connection.reads) reads")
    }

    /// A camera that sends AAC beside its video (GStreamer's rtpmp4gpay, RFC 3640 AAC-hbr): the
    /// reader sets both tracks up on one connection and the segment holds both, playable, the
    /// audio as long as the video and starting with it; asked for no audio (activity's
    /// sub-stream) it sets up the video alone.
    @Test func aSegmentWithAudioThroughTheReaderKeepsTheAAC() throws {
        let camera = Camera(clip: try Rig.clip(), extra: ["--audio"])
        try camera.start()
        defer { camera.stop() }
        let input = try RTSPInput(url: camera.url, displayURL: camera.url, interrupter: Interrupter())
        #expect(input.info.audioCodec == "aac" && input.info.audioKept && input.audioIndex == 1, "\(input.info)")
        #expect(input.connection.audio?.clockRate == 8000)
        let packet = Packet()
        try input.read(into: packet)
        let path = Rig.tempDir("rtsp-audio") + "/segment.mp4"
        let muxer = try SegmentMuxer(path: path, input: input, originMicroseconds: try #require(packet.dtsMicroseconds), comment: "junction/1 test")
        var counts = (video: 0, audio: 0)
        let started = Date()
        while Date().timeIntervalSince(started) < 6 {
            if packet.kind == .audio { counts.audio += 1 } else { counts.video += 1 }
            try muxer.write(packet)
            try input.read(into: packet)
        }
        let finished = try muxer.finish()
        #expect(counts.audio > 30, "\(counts.audio) AAC frames in 6 s (the clip: 8 kHz, ~7.8 frames a second)")
        #expect(finished.droppedPackets == 0, "\(finished.droppedPackets) packets dropped by the muxer")
        let probe = try Rig.ffprobe(["-show_entries", "stream=codec_name,start_time,duration", "-of", "csv=p=0", path])
            .split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        #expect(probe.map { $0.first ?? "" } == ["h264", "aac"], "ffprobe: \(probe)")
        // Side by side on the camera's clock: both tracks end within 0.3 s of each other, and the
        // audio's first whole frame (the first packet is AAC's shortened priming one) comes within
        // 0.3 s of the first picture. (The video starts at 0.64 s: its decode times run 16
        // pictures behind, DecodeTimeline's default depth.)
        if probe.count == 2, let vs = Double(probe[0][1]), let vd = Double(probe[0][2]), let a = Double(probe[1][1]), let ad = Double(probe[1][2]) {
            #expect(abs((a + ad) - (vs + vd)) < 0.3, "the audio ends at \(a + ad) s, the video at \(vs + vd) s")
            let times = try Rig.ffprobe(["-select_streams", "a", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path])
                .split(separator: "\n").compactMap { Double($0) }
            if times.count > 2 {
                let firstWhole = times[1] - (times[2] - times[1])
                #expect(abs(firstWhole - vs) < 0.3, "the audio starts at \(firstWhole) s, the video at \(vs) s")
            }
        }
        let decode = try Rig.run("/usr/bin/ffmpeg", ["-v", "error", "-i", path, "-f", "null", "-"])
        #expect(decode.status == 0 && decode.stderr.isEmpty, "\(decode.stderr.prefix(500))")
        // GStreamer's rtpbin sends sender reports for both tracks: the audio was placed by them.
        #expect(input.audioSyncedByReports == true)

        let videoOnly = try RTSPConnection(options: { var o = RTSPConnection.Options(url: camera.url); o.audio = false; return o }())
        #expect(videoOnly.audio == nil && videoOnly.audioNote == nil)
        for _ in 0..<30 { _ = try videoOnly.next() }
        videoOnly.close()
        print("rtsp input with audio: \(counts.video) pictures, \(counts.audio) AAC frames, \(finished.bytes) bytes, synced by reports: \(input.audioSyncedByReports.map(String.init) ?? "not yet")")
    }

    /// `camera.reader = "junction"`: the daemon records through the box's own reader, and the
    /// segments are what libavformat's path makes (continuous, keyframe first, 25 pictures a
    /// second, the recorded sha256, `junction check --deep` clean). A camera that goes away
    /// and comes back is reconnected and the gap indexed.
    @Test func theRecorderRecordsThroughJunctionsReader() throws {
        let camera = Camera(clip: try Rig.clip(bitrate: "1M", size: "640x360", seconds: 60, audio: "none"))
        try camera.start()
        defer { camera.stop() }
        let dir = Rig.tempDir("reader-junction")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 6, extra: "reader = \"junction\"")
        let daemon = Daemon(config: config)
        try daemon.start()
        #expect(Rig.wait(seconds: 20) { ((try? listSegments(config)) ?? []).count >= 3 }, "recording did not go on: \(daemon.output.suffix(1500))")
        camera.stop()
        Thread.sleep(forTimeInterval: 3)
        try camera.start()
        let before = (try? listSegments(config))?.count ?? 0
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= before + 2 }, "no recording after the camera came back: \(daemon.output.suffix(1500))")
        #expect(daemon.stop() == 0)
        let segments = try listSegments(config)
        var holes = 0
        for (i, s) in segments.enumerated() {
            let packets = try Rig.ffprobe(["-select_streams", "v", "-show_entries", "packet=dts_time,flags", "-of", "csv=p=0", s.path])
                .split(separator: "\n").map { $0.split(separator: ",") }
            #expect(packets.first?.last?.hasPrefix("K") == true, "\(s.path) must start on a keyframe")
            let frames = Int(try Rig.ffprobe(["-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", s.path])
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(abs(Double(frames) - s.duration_seconds * 25) <= 3, "\(s.path): \(frames) pictures for \(s.duration_seconds) s")
            let sha = try Rig.run("/usr/bin/sha256sum", [s.path]).stdout.prefix(64)
            #expect(String(sha) == s.sha256)
            if i + 1 < segments.count, abs(parseTime(segments[i + 1].start) - parseTime(s.end)) > 0.1 { holes += 1 }
        }
        #expect(holes == 1, "continuous but for the camera's absence: \(holes) holes")
        let status = try statusJSON(config)
        #expect((status["gaps_last_24h"] as? [[String: Any]] ?? []).count == 1, "the camera's absence is one gap: \(status["gaps_last_24h"] ?? "none")")
        let check = try Rig.junction(["check", "--config", config, "--deep"])
        #expect(check.status == 0, "\(check.stdout)")
    }

    @Test func aCameraThatIsNotThereSaysSo() {
        let port = Rig.freePort()
        #expect(throws: RTSPError.self) { try RTSPConnection(options: .init(url: "rtsp://127.0.0.1:\(port)/cam")) }
    }
}
