import Testing
import Wire
@testable import Activity

/// The motion trigger (issue 14): zones, schedule, threshold, minimum length, joining, the
/// longest event, and the hourly cap, each at its bound.
@Suite struct MotionTests {
    let t0 = Timestamp(milliseconds: 1_800_000_000_000)
    /// Cells 80–95: row 5, where the tests' shape moves.
    var row5: CellMask { var m = CellMask(); for c in 80..<96 { m[c] = true }; return m }
    func cells(_ list: [Int]) -> CellMask { var m = CellMask(); for c in list { m[c] = true }; return m }

    func rules(zone: CellMask? = nil, schedule: [DailyWindow] = [], threshold: Int = 1, minSeconds: Double = 2,
               rolls: Double = 10, cap: Double = 600) -> MotionRules {
        MotionRules(zone: zone ?? row5, schedule: schedule, threshold: threshold, minSeconds: minSeconds,
                    preRollSeconds: rolls, postRollSeconds: rolls, maxPinSecondsPerHour: cap)
    }

    /// Keyframes a second apart from `from` to `to` s (inclusive) with `moving` cells; the rest quiet;
    /// then the recording reaches `until` s. Local minute: `minute` for all.
    func run(_ trigger: inout MotionTrigger, moving: CellMask, from: Int, to: Int, until: Int, minute: Int = 0, lighting: Bool = false) -> [MotionTrigger.Decision] {
        var out: [MotionTrigger.Decision] = []
        for s in 0...until {
            let moved = s >= from && s <= to
            out += trigger.observe(at: t0 + Double(s), localMinute: minute, cells: moved ? moving : CellMask(), lighting: moved && lighting)
        }
        return out + trigger.advance(to: t0 + Double(until))
    }

    @Test func movementInTheZoneFlagsItsSpan() {
        var trigger = MotionTrigger(rules: rules())
        let d = run(&trigger, moving: cells([83, 84]), from: 10, to: 15, until: 30)
        #expect(d == [.flag(from: t0 + 10, to: t0 + 15, peakCells: 2, trimmed: false)])
        #expect(trigger.usedSeconds(now: t0 + 30) == 25, "5 s and 10 + 10 s of rolls")
    }

    @Test func movementOutsideTheZoneUnderTheThresholdOrInLightIsNothing() {
        var outside = MotionTrigger(rules: rules())
        #expect(run(&outside, moving: cells([3, 4, 5]), from: 10, to: 20, until: 40).isEmpty)
        var fewCells = MotionTrigger(rules: rules(threshold: 3))
        #expect(run(&fewCells, moving: cells([80, 81, 3]), from: 10, to: 20, until: 40).isEmpty, "2 zone cells under a threshold of 3")
        var atThreshold = MotionTrigger(rules: rules(threshold: 3))
        #expect(run(&atThreshold, moving: cells([80, 81, 82]), from: 10, to: 20, until: 40).count == 1, "3 cells at a threshold of 3")
        var light = MotionTrigger(rules: rules())
        #expect(run(&light, moving: row5, from: 10, to: 20, until: 40, lighting: true).isEmpty)
    }

    @Test func tooShortMakesNoFlag() {
        var one = MotionTrigger(rules: rules(minSeconds: 2))
        let d = run(&one, moving: row5, from: 10, to: 10, until: 30)
        #expect(d.count == 1 && { if case .tooShort = d[0] { true } else { false } }(), "\(d)")
        var two = MotionTrigger(rules: rules(minSeconds: 2))
        #expect(run(&two, moving: row5, from: 10, to: 12, until: 30) == [.flag(from: t0 + 10, to: t0 + 12, peakCells: 16, trimmed: false)], "2 s at a minimum of 2 s")
    }

    @Test func theScheduleIsReadInLocalMinutes() {
        let night = DailyWindow(parsing: "22:00-05:00")!
        var noon = MotionTrigger(rules: rules(schedule: [night]))
        #expect(run(&noon, moving: row5, from: 10, to: 20, until: 40, minute: 12 * 60).isEmpty)
        var late = MotionTrigger(rules: rules(schedule: [night]))
        #expect(run(&late, moving: row5, from: 10, to: 20, until: 40, minute: 23 * 60 + 30).count == 1)
        #expect(night.contains(minute: 22 * 60) && night.contains(minute: 4 * 60 + 59) && !night.contains(minute: 5 * 60) && !night.contains(minute: 21 * 60 + 59))
        #expect(DailyWindow(parsing: "08:00-17:30")?.contains(minute: 17 * 60 + 29) == true)
        #expect(DailyWindow(parsing: "8:00 - 17:30")?.description == "08:00-17:30")
        for bad in ["", "22:00", "22-05", "24:01-05:00", "22:00-05:0", "aa:bb-cc:dd", "22:00-05:00-06:00"] {
            #expect(DailyWindow(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func nearMovementsJoinAndFarOnesDoNot() {
        var trigger = MotionTrigger(rules: rules(minSeconds: 0))
        var out: [MotionTrigger.Decision] = []
        // Movement at 10–12, 16–18 (4 s apart: joined), 30–32 (12 s later: its own).
        for s in 0...50 {
            let moved = (10...12).contains(s) || (16...18).contains(s) || (30...32).contains(s)
            out += trigger.observe(at: t0 + Double(s), localMinute: 0, cells: moved ? row5 : CellMask())
        }
        out += trigger.advance(to: t0 + 50)
        #expect(out == [.flag(from: t0 + 10, to: t0 + 18, peakCells: 16, trimmed: false),
                        .flag(from: t0 + 30, to: t0 + 32, peakCells: 16, trimmed: false)])
    }

    @Test func anEventThatDoesNotEndIsFlaggedAtItsLongest() {
        var trigger = MotionTrigger(rules: rules(rolls: 0, cap: 3600))
        let d = run(&trigger, moving: row5, from: 0, to: 700, until: 710)
        #expect(d == [.flag(from: t0, to: t0 + 300, peakCells: 16, trimmed: false),
                      .flag(from: t0 + 301, to: t0 + 601, peakCells: 16, trimmed: false),
                      .flag(from: t0 + 602, to: t0 + 700, peakCells: 16, trimmed: false)])
    }

    @Test func theHourlyCapTrimsThenRefusesThenRecovers() {
        // Cap 100 s; rolls 10 + 10. 30 s of movement pins 50; the next 60 s has room for 30 s;
        // the next none.
        var trigger = MotionTrigger(rules: rules(cap: 100))
        var out = run(&trigger, moving: row5, from: 10, to: 40, until: 60)
        #expect(out == [.flag(from: t0 + 10, to: t0 + 40, peakCells: 16, trimmed: false)])
        out = []
        for s in 100...200 { out += trigger.observe(at: t0 + Double(s), localMinute: 0, cells: s <= 160 ? row5 : CellMask()) }
        #expect(out == [.flag(from: t0 + 100, to: t0 + 130, peakCells: 16, trimmed: true)])
        #expect(trigger.usedSeconds(now: t0 + 200) == 100, "the cap is used to the second")
        out = []
        for s in 300...400 { out += trigger.observe(at: t0 + Double(s), localMinute: 0, cells: s <= 320 ? row5 : CellMask()) }
        #expect(out.count == 1 && { if case .capped(_, let used) = out[0] { used == 100 } else { false } }(), "\(out)")
        // An hour after the first flag was made, its seconds are free again.
        out = []
        for s in 3670...3700 { out += trigger.observe(at: t0 + Double(s), localMinute: 0, cells: s <= 3680 ? row5 : CellMask()) }
        #expect(out == [.flag(from: t0 + 3670, to: t0 + 3680, peakCells: 16, trimmed: false)], "\(out)")
    }

    @Test func flagsMadeBeforeARestartCount() {
        var trigger = MotionTrigger(rules: rules(cap: 100))
        trigger.remember(flagMadeAt: t0, pinnedSeconds: 90)
        let d = run(&trigger, moving: row5, from: 10, to: 20, until: 40)
        #expect(d.count == 1 && { if case .capped = d[0] { true } else { false } }(), "\(d)")
    }

    @Test func zonesBecomeCells() {
        let all = MotionZones.mask(polygons: [], cells: [])
        #expect(all.count == ActivityGrid.cells)
        let p = { (x: Double, y: Double) in MotionZones.Point(x: x, y: y) }
        let bottom = MotionZones.mask(polygons: [[p(0, 0.55), p(1, 0.55), p(1, 1), p(0, 1)]], cells: [])
        #expect(bottom.count == 64 && bottom[80] && !bottom[79])
        let tiny = MotionZones.mask(polygons: [[p(0.51, 0.51), p(0.52, 0.51), p(0.52, 0.52)]], cells: [])
        #expect(tiny.count == 1 && tiny[ActivityGrid.cell(x: 0.51, y: 0.51)], "a zone smaller than a cell has its cell")
        let triangle = MotionZones.mask(polygons: [[p(0, 0), p(1, 0), p(0, 1)]], cells: [143])
        #expect(triangle[0] && triangle[143] && !triangle[142] && triangle.count > 60 && triangle.count < 90, "\(triangle.count)")
    }
}
