import Foundation
import Testing

/// `junction export` on a ring recorded from a real RTSP camera that went away for a while: one
/// MP4 whose timeline ffprobe confirms, a manifest whose hashes match, a clear refusal when a
/// source segment is corrupted, and parts when the target needs them.
@Suite(.timeLimit(.minutes(3)))
struct ExportTests {
    @Test func rangeSpanningAGapBecomesOnePlayableMP4() throws {
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        let dir = Rig.tempDir("export")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 3 }, "\(daemon.output)")
        camera.stop()                                   // the camera goes away for ~6 s
        _ = Rig.wait(seconds: 6) { false }
        try camera.start()
        let before = try listSegments(config).count
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= before + 3 }, "\(daemon.output)")
        daemon.stop()

        let segments = try listSegments(config)
        let out = Rig.tempDir("usb")
        let export = try Rig.junction(["export", "--config", config, "--from", segments.first!.start, "--to", segments.last!.end, "-o", out + "/incident.mp4"])
        #expect(export.status == 0, "\(export.stdout)\(export.stderr)")
        #expect(export.stdout.contains("Not in the export"), "the gap is named: \(export.stdout)")
        let mp4 = out + "/incident.mp4"

        // One file, every video packet in order, its length the span including the gap.
        let span = parseTime(segments.last!.end) - parseTime(segments.first!.start)
        let duration = Double(try Rig.ffprobe(["-show_entries", "format=duration", "-of", "csv=p=0", mp4]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(abs(duration - span) < 1.0, "duration \(duration) vs span \(span)")
        let dts = try Rig.ffprobe(["-select_streams", "v", "-show_entries", "packet=dts_time", "-of", "csv=p=0", mp4])
            .split(separator: "\n").compactMap { Double($0) }
        #expect(dts.count > 100 && zip(dts, dts.dropFirst()).allSatisfy { $0 < $1 }, "video DTS strictly increasing")
        let jump = zip(dts, dts.dropFirst()).map { $1 - $0 }.max() ?? 0
        #expect(jump > 3, "the gap is a jump in the timeline (\(jump) s), not hidden")

        // The manifest lists every source with its hash, and the hashes are the files'.
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/incident.manifest.json"))) as? [String: Any] ?? [:]
        let sources = manifest["segments"] as? [[String: Any]] ?? []
        #expect(sources.count == segments.count)
        #expect(Set(sources.compactMap { $0["sha256"] as? String }) == Set(segments.map(\.sha256)))
        let part = (manifest["parts"] as? [[String: Any]])?.first
        #expect(part?["sha256"] as? String == String(try Rig.run("/usr/bin/sha256sum", [mp4]).stdout.prefix(64)))
        #expect((manifest["gaps"] as? [[String: Any]])?.isEmpty == false)

        // The proof beside it (issue 13): junction verify, offline, finds it consistent and
        // complete except the gap the box itself declared when the camera went away. This box
        // never met a commune, so nothing binds its key: never "authentic", exit 3 (issue 23).
        let verify = try Rig.junction(["verify", out + "/incident.manifest.json", "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any] ?? [:]
        let declared = report["declared_gaps"] as? [[String: Any]] ?? []
        let declaredSeconds = declared.reduce(0.0) { $0 + parseTime($1["to"] as? String ?? "") - parseTime($1["from"] as? String ?? "") }
        #expect(verify.status == 3 && report["verdict"] as? String == "consistent_unanchored" && report["anchored"] as? Bool == false
                && report["authentic"] as? Bool == true && report["complete"] as? Bool == true
                && (report["verified_segments"] as? Int) == segments.count && declaredSeconds > 3
                && (report["undeclared"] as? [Any])?.isEmpty == true, "\(verify.stdout)\(verify.stderr)")

        // Split into parts when asked (FAT sticks do it on their own at 4 GiB).
        let parts = Rig.tempDir("usb-parts")
        let split = try Rig.junction(["export", "--config", config, "--from", segments.first!.start, "--to", segments.last!.end,
                                      "-o", parts, "--split-size", "1MB"])
        #expect(split.status == 0, "\(split.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: parts).filter { $0.hasSuffix(".mp4") }
        #expect(files.count >= 2 && files.allSatisfy { $0.contains("-part") }, "\(files)")
        for f in files { _ = try Rig.ffprobe(["-show_entries", "format=duration", parts + "/" + f]) }

        // A corrupted source: refused, nothing written; --skip-corrupt leaves it out and says so.
        let victim = segments[1].path
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: victim))
        try handle.seek(toOffset: UInt64(segments[1].bytes / 2))
        try handle.write(contentsOf: Data([0xde, 0xad, 0xbe, 0xef]))
        try handle.close()
        let refused = Rig.tempDir("usb-refused")
        let bad = try Rig.junction(["export", "--config", config, "--from", segments.first!.start, "--to", segments.last!.end, "-o", refused])
        #expect(bad.status != 0 && bad.stderr.contains("corrupted") && bad.stderr.contains("--skip-corrupt"), "\(bad.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: refused).isEmpty, "nothing handed over")
        let skipped = try Rig.junction(["export", "--config", config, "--from", segments.first!.start, "--to", segments.last!.end,
                                        "-o", refused, "--skip-corrupt"])
        #expect(skipped.status == 0 && skipped.stdout.contains("Left out, corrupted: 1"), "\(skipped.stdout)\(skipped.stderr)")

        // Bad input: a range the ring does not hold, --to before --from, a target that is not there.
        let none = try Rig.junction(["export", "--config", config, "--from", "2001-01-01T00:00:00Z", "--to", "2001-01-01T00:10:00Z", "-o", out])
        #expect(none.status != 0 && none.stderr.contains("nothing recorded") && none.stderr.contains("the ring holds"), "\(none.stderr)")
        let swapped = try Rig.junction(["export", "--config", config, "--from", segments.last!.end, "--to", segments.first!.start, "-o", out])
        #expect(swapped.status != 0 && swapped.stderr.contains("swap"), "\(swapped.stderr)")
        let missing = try Rig.junction(["export", "--config", config, "--from", segments.first!.start, "--to", segments.last!.end,
                                        "-o", "/nonexistent-usb/x.mp4"])
        #expect(missing.status != 0 && missing.stderr.contains("mounted"), "\(missing.stderr)")

        // A stick mounted read-only, and one too small: refused before anything is written.
        for (options, expected) in [("ro,size=4m", "cannot write to"), ("size=1m", "free; the export needs")] {
            let mount = Rig.tempDir("usb-mount")
            let m = try Rig.run("/usr/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", mount])
            try #require(m.status == 0, "mounting a tmpfs needs root: \(m.stderr)")
            defer { _ = try? Rig.run("/usr/bin/umount", [mount]) }
            let r = try Rig.junction(["export", "--config", config, "--from", segments.first!.start, "--to", segments.last!.end, "-o", mount])
            #expect(r.status != 0 && r.stderr.contains(expected) && r.stderr.contains("Nothing was written"), "\(options): \(r.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: mount).isEmpty)
        }
    }

    /// `junction snapshot`: a decodable JPEG of the right size from the live camera (while the
    /// recorder records) and from the ring at a time; a clear answer when the camera is down.
    @Test func snapshotLiveAndFromTheRing() throws {
        let camera = Camera(clip: try Rig.clip(size: "1280x720"))
        try camera.start()
        let dir = Rig.tempDir("snapshot")
        let config = try writeConfig(dir: dir, cameraURL: camera.url, segmentSeconds: 2)
        let daemon = Daemon(config: config)
        try daemon.start()
        defer { daemon.stop() }
        #expect(Rig.wait(seconds: 30) { ((try? listSegments(config)) ?? []).count >= 2 }, "\(daemon.output)")

        for (name, extra) in [("live", [String]()), ("ring", ["--at", try listSegments(config)[1].start])] {
            let jpg = dir + "/\(name).jpg"
            let r = try Rig.junction(["snapshot", "--config", config, "-o", jpg] + extra)
            #expect(r.status == 0 && r.stdout.contains("1280×720"), "\(name): \(r.stdout)\(r.stderr)")
            let probe = try Rig.ffprobe(["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", jpg])
            #expect(probe.contains("mjpeg,1280,720"), "\(name): \(probe)")
            // Decodable, not just a header.
            let decode = try Rig.run("/usr/bin/ffmpeg", ["-v", "error", "-i", jpg, "-f", "null", "-"])
            #expect(decode.status == 0 && decode.stderr.isEmpty, "\(name): \(decode.stderr)")
        }
        camera.stop()
        let down = try Rig.junction(["snapshot", "--config", config, "-o", dir + "/down.jpg"])
        #expect(down.status != 0 && down.stderr.contains("--at="), "offers a picture from the ring: \(down.stderr)")
        let never = try Rig.junction(["snapshot", "--config", config, "--at", "2001-01-01T00:00:00Z"])
        #expect(never.status != 0 && never.stderr.contains("nothing recorded at"), "\(never.stderr)")
    }
}
