import Activity
import Foundation
import Media
import Testing

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
}
