import Dispatch
import Testing
@testable import Activity

/// A still junction as the detector sees it: a fixed pattern of greys with a little sensor noise,
/// a bright square where something moves, and the whole picture brighter or darker for lighting.
struct Scene {
    var noise: UInt64 = 0x9E37_79B9_7F4A_7C15
    let base: [UInt8] = (0..<(GreyPicture.width * GreyPicture.height)).map { i in
        let x = i % GreyPicture.width, y = i / GreyPicture.width
        return UInt8(60 + (x * 7 + y * 13) % 90)   // texture: lane marks, kerbs, walls
    }

    mutating func jitter() -> Int {
        noise ^= noise << 13; noise ^= noise >> 7; noise ^= noise << 17
        return Int(noise % 7) - 3                   // ±3 grey levels of sensor noise
    }

    /// The scene with `brightness` added, and an 8 × 6 pixel object at (`x`, `y`) pixels if given.
    mutating func picture(brightness: Int = 0, object: (x: Int, y: Int)? = nil) -> GreyPicture {
        var p = base.map { v in UInt8(clamping: Int(v) + brightness) }
        for i in p.indices { p[i] = UInt8(clamping: Int(p[i]) + jitter()) }
        if let o = object {
            for y in o.y..<min(GreyPicture.height, o.y + 6) {
                for x in o.x..<min(GreyPicture.width, o.x + 8) { p[y * GreyPicture.width + x] = 235 }
            }
        }
        return GreyPicture(width: GreyPicture.width, height: GreyPicture.height, pixels: p)
    }
}

@Suite struct ActivityTests {
    /// A motorbike crossing left to right along the lower middle of the picture: movement is
    /// found at each keyframe it is in, in the cells it covers, and nowhere else.
    @Test func somethingCrossingIsFoundWhereAndWhenItIs() {
        var scene = Scene()
        var detector = ActivityDetector()
        var t: Int64 = 0
        for _ in 0..<5 {   // the background settles
            #expect(detector.observe(scene.picture(), microseconds: t).cells.isEmpty)
            t += 1_000_000
        }
        for step in 0..<6 {
            let x = 4 + step * 10, y = 22
            let o = detector.observe(scene.picture(object: (x, y)), microseconds: t)
            t += 1_000_000
            #expect(!o.lighting && o.score > 60, "step \(step): \(o.score)")
            let expected = ActivityGrid.cell(x: (Double(x) + 4) / Double(GreyPicture.width), y: (Double(y) + 3) / Double(GreyPicture.height))
            #expect(o.cells[expected], "step \(step): the object's own cell")
            // Nothing far from the object (its cells, and where it was a keyframe ago, may show).
            for c in 0..<ActivityGrid.cells where o.cells[c] {
                let (cx, cy) = (c % ActivityGrid.columns, c / ActivityGrid.columns)
                #expect(cy >= 4 && cy <= 7 && cx >= x / 4 - 4 && cx <= (x + 8) / 4 + 1, "step \(step): cell \(cx),\(cy) is away from the object")
            }
        }
        // Gone again: quiet within a few keyframes.
        var quiet = 0
        for _ in 0..<8 {
            if detector.observe(scene.picture(), microseconds: t).cells.isEmpty { quiet += 1 }
            t += 1_000_000
        }
        #expect(quiet >= 6, "\(quiet) of 8 keyframes quiet after it left")
    }

    /// Headlights, a cloud or the camera's night mode light the whole scene at once, and dawn
    /// brightens it slowly: neither is movement.
    @Test func lightingChangesInAStillSceneStayQuiet() {
        var scene = Scene()
        var detector = ActivityDetector()
        var t: Int64 = 0
        var observations: [Observation] = []
        for _ in 0..<5 { observations.append(detector.observe(scene.picture(), microseconds: t)); t += 1_000_000 }
        // A sudden step (lights on), then back.
        observations.append(detector.observe(scene.picture(brightness: 60), microseconds: t)); t += 1_000_000
        #expect(observations.last?.lighting == true, "a sudden change of the whole picture is lighting")
        for _ in 0..<3 { observations.append(detector.observe(scene.picture(brightness: 60), microseconds: t)); t += 1_000_000 }
        observations.append(detector.observe(scene.picture(), microseconds: t)); t += 1_000_000
        // Dawn: 2 grey levels a keyframe for 40 keyframes.
        for step in 0..<40 { observations.append(detector.observe(scene.picture(brightness: step * 2), microseconds: t)); t += 1_000_000 }
        let moved = observations.filter { !$0.cells.isEmpty }
        #expect(moved.isEmpty, "\(moved.count) keyframes read as movement: \(moved.map(\.score))")
        // And movement after it is still found.
        let o = detector.observe(scene.picture(brightness: 78, object: (30, 10)), microseconds: t)
        #expect(!o.cells.isEmpty && !o.lighting)
    }

    /// Something in the picture when the background is first taken leaves a ghost where it was;
    /// something that stops (a parked car) stays still: either joins the background after a few
    /// keyframes, and a later movement there is found again.
    @Test func aGhostOrAParkedShapeJoinsTheBackground() {
        var scene = Scene()
        var detector = ActivityDetector()
        var t: Int64 = 0
        _ = detector.observe(scene.picture(object: (4, 4)), microseconds: t)   // taken with a shape in it
        var ghost: [Bool] = []
        for _ in 0..<8 {
            t += 1_000_000
            ghost.append(!detector.observe(scene.picture(), microseconds: t).cells.isEmpty)
        }
        #expect(ghost.prefix(3).contains(true), "the ghost shows at first: \(ghost)")
        #expect(!ghost.suffix(3).contains(true), "and is gone within \(detector.configuration.absorbAfter + 1) keyframes: \(ghost)")
        var parked: [Bool] = []
        for _ in 0..<8 {
            t += 1_000_000
            parked.append(!detector.observe(scene.picture(object: (40, 20)), microseconds: t).cells.isEmpty)
        }
        #expect(parked.first == true && !parked.suffix(3).contains(true), "a parked shape becomes background: \(parked)")
        t += 1_000_000
        #expect(!detector.observe(scene.picture(object: (20, 20)), microseconds: t).cells.isEmpty, "movement is still found")
    }

    @Test func aPictureOfAnotherSizeRestartsTheBackground() {
        var detector = ActivityDetector()
        _ = detector.observe(GreyPicture(width: 4, height: 2, pixels: [UInt8](repeating: 10, count: 8)), microseconds: 0)
        let o = detector.observe(GreyPicture(width: 2, height: 2, pixels: [255, 0, 255, 0]), microseconds: 1)
        #expect(o.cells.isEmpty && !o.lighting)
    }

    @Test func summariesRoundTripAndRefuseWhatIsNotOne() throws {
        var summary = ActivitySummary()
        var cells = CellMask()
        cells[0] = true; cells[70] = true; cells[143] = true
        summary.add(Observation(microseconds: 0, cells: cells, score: 200), secondsIntoSegment: 1.25)
        summary.add(Observation(microseconds: 0, lighting: true), secondsIntoSegment: 2)
        #expect(summary.encoded.count == 21 + 2 * 4 && summary.peak == 200)
        #expect(try ActivitySummary(encoded: summary.encoded) == summary)
        #expect(try ActivitySummary(hex: summary.hex) == summary)
        #expect(summary.entries[0].deciseconds == 12 && summary.entries[1].lighting)
        #expect(CellMask(encoded: cells.encoded) == cells && cells.count == 3 && !cells[144])
        var bad = summary.encoded
        bad[0] = 2
        #expect(throws: ActivitySummary.DecodeError.self) { try ActivitySummary(encoded: bad) }
        bad = summary.encoded + [0]
        #expect(throws: ActivitySummary.DecodeError.self) { try ActivitySummary(encoded: bad) }
        #expect(throws: ActivitySummary.DecodeError.self) { try ActivitySummary(hex: "zz") }
        #expect(throws: ActivitySummary.DecodeError.self) { try ActivitySummary(encoded: []) }
    }

    /// At the bound: `maxEntries` keyframes are kept one by one; more fold into the last.
    @Test func aSummaryIsBoundedAtItsEntryLimit() throws {
        var summary = ActivitySummary()
        for i in 0..<(ActivitySummary.maxEntries + 10) {
            summary.add(Observation(microseconds: 0, score: i == ActivitySummary.maxEntries + 5 ? 250 : 1), secondsIntoSegment: Double(i) / 2)
        }
        #expect(summary.entries.count == ActivitySummary.maxEntries && summary.entries.last?.score == 250)
        #expect(try ActivitySummary(encoded: summary.encoded) == summary)
        var over = summary.encoded
        over[19] = UInt8((ActivitySummary.maxEntries + 1) >> 8); over[20] = UInt8(truncatingIfNeeded: ActivitySummary.maxEntries + 1)
        #expect(throws: ActivitySummary.DecodeError.self) { try ActivitySummary(encoded: over + [0, 0, 0, 0]) }
    }

    /// The ring waits for a segment's summary a bounded time: it comes when the worker passes
    /// the segment's end, or the wait ends without it (the segment is indexed all the same).
    @Test func aPendingSummaryComesOrTheWaitEnds() async {
        let pending = PendingActivity()
        // Completed from a dispatch queue, as the worker does (never from the concurrency pool).
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { pending.complete(SegmentActivity(summary: ActivitySummary(entries: [.init(deciseconds: 3, score: 9)]))) }
        #expect(await pending.value(timeout: .seconds(30))?.summary.peak == 9)
        let never = PendingActivity()
        #expect(await never.value(timeout: .milliseconds(100)) == nil, "the wait ends without it")
    }
}
