import Testing
import Wire
@testable import Activity

/// A byte a minute from segments' summaries (issue 14): what the heartbeat carries.
@Suite struct ActivityTimelineTests {
    let t0 = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!

    @Test func minutesSayMovedStillOrUnknown() {
        // 10:00:30–10:01:30: movement at 10:00:40 (50) and 10:01:10 (255, capped at 254), lighting
        // at 10:01:20 (not movement). 10:03:00–10:03:10: recorded, nothing moved.
        let moving = ActivitySummary(entries: [.init(deciseconds: 100, score: 50), .init(deciseconds: 400, score: 255),
                                               .init(deciseconds: 500, score: 200, lighting: true)])
        let still = ActivitySummary(entries: [.init(deciseconds: 0, score: 0), .init(deciseconds: 50, score: 0)])
        let levels = ActivityTimeline.minutes(from: t0, count: 5, segments: [
            .init(start: t0 + 30, end: t0 + 90, summary: moving),
            .init(start: t0 + 180, end: t0 + 190, summary: still),
        ])
        #expect(levels == [50, 254, 255, 0, 255])
    }

    @Test func segmentsOutsideTheWindowAreLeftOut() {
        let s = ActivitySummary(entries: [.init(deciseconds: 0, score: 9), .init(deciseconds: 1200, score: 7)])
        // Begins 30 s before the window: its first moment is before it, its second (at +120 s) in minute 1.
        let levels = ActivityTimeline.minutes(from: t0, count: 2, segments: [.init(start: t0 - 30, end: t0 + 100, summary: s)])
        #expect(levels == [0, 7])
        #expect(ActivityTimeline.minutes(from: t0, count: 0, segments: []).isEmpty)
        #expect(ActivityTimeline.minutes(from: t0, count: 2, segments: [.init(start: t0 - 100, end: t0 - 10, summary: s)]) == [255, 255])
    }

    @Test func theWireFormKeepsItsBounds() {
        let day = Heartbeat.ActivityMinutes(from: t0, levels: [UInt8](repeating: 3, count: 1440))
        #expect(day.decoded?.count == 1440)
        #expect(Heartbeat.ActivityMinutes(from: t0, levels: [UInt8](repeating: 3, count: 1441)).decoded == nil, "a day at most")
        #expect(Heartbeat.ActivityMinutes(from: t0 + 1, levels: [1]).decoded == nil, "from a whole minute")
        var odd = day
        odd.levels = "abc"
        #expect(odd.decoded == nil)
        odd.levels = "zz"
        #expect(odd.decoded == nil)
    }
}
