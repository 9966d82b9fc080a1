import Testing
@testable import Config

/// `[update]` (issue 24): the health check's segments, deadline and tries, each bound refused
/// at the bound, and a deadline too short for the segments asked refused with what to write.
@Suite struct UpdateConfigTests {
    let minimal = """
        [device]
        id = "thaithuy-0042"
        [camera]
        url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
        """

    func parse(_ extra: String) throws(ConfigError) -> JunctionConfiguration {
        try JunctionConfiguration.parse(minimal + "\n" + extra + "\n")
    }

    func refusal(_ extra: String) -> ConfigError? {
        do {
            _ = try parse(extra)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsAreThreeSegmentsInFifteenMinutesAndThreeTries() throws {
        let c = try JunctionConfiguration.parse(minimal)
        #expect(c.update == JunctionConfiguration.Update())
        #expect(c.update.healthSegments == 3 && c.update.healthDeadlineSeconds == 900 && c.update.tries == 3)
    }

    @Test func everyKeyIsReadAtItsBounds() throws {
        let low = try parse("[update]\nhealth_segments = 1\nhealth_deadline_seconds = 60\ntries = 1")
        #expect(low.update.healthSegments == 1 && low.update.healthDeadlineSeconds == 60 && low.update.tries == 1)
        let high = try parse("[update]\nhealth_segments = 100\nhealth_deadline_seconds = 86400\ntries = 10")
        #expect(high.update.healthSegments == 100 && high.update.healthDeadlineSeconds == 86400 && high.update.tries == 10)
    }

    @Test func outsideItsBoundsIsRefusedWithTheKeyAndLine() {
        for (text, key) in [("health_segments = 0", "update.health_segments"), ("health_segments = 101", "update.health_segments"),
                            ("health_deadline_seconds = 59", "update.health_deadline_seconds"),
                            ("health_deadline_seconds = 86401", "update.health_deadline_seconds"),
                            ("tries = 0", "update.tries"), ("tries = 11", "update.tries"), ("tries = \"3\"", "update.tries")] {
            let e = refusal("[update]\n" + text)
            #expect(e?.key == key, "\(text)")
            #expect(e?.line == 6, "\(text)")
        }
        #expect(refusal("[update]\nhealth_segment = 3")?.message.contains("known keys here: update.health_deadline_seconds, update.health_segments, update.tries") == true)
    }

    /// 30 segments of 10 s cannot be recorded in 300 s: the box would roll back every release.
    @Test func aDeadlineTooShortForTheSegmentsIsRefused() throws {
        let e = refusal("[storage]\nsegment_seconds = 10\n[update]\nhealth_segments = 30\nhealth_deadline_seconds = 300")
        #expect(e?.key == "update.health_deadline_seconds")
        #expect(e?.message == "300 s is too short to record 30 segments of 10 s: allow more than 300 s, or fewer segments")
        #expect(try parse("[storage]\nsegment_seconds = 10\n[update]\nhealth_segments = 30\nhealth_deadline_seconds = 301").update.healthSegments == 30)
    }
}
