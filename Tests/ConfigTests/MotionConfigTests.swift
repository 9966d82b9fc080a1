import Activity
import Testing
@testable import Config

/// `[motion]` and `[device] time_zone` (issue 14): every key read, every bound refused at the
/// bound with the key, the line and what to write.
@Suite struct MotionConfigTests {
    let minimal = """
        [device]
        id = "thaithuy-0042"
        [camera]
        url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
        """

    func refusal(_ extra: String) -> ConfigError? {
        do {
            _ = try JunctionConfiguration.parse(minimal + "\n" + extra + "\n")
            return nil
        } catch {
            return error
        }
    }

    @Test func offByDefaultAndTheBoxsZoneIsVietnams() throws {
        let c = try JunctionConfiguration.parse(minimal)
        #expect(!c.motion.enabled && !c.activity.enabled)
        #expect(c.device.timeZone == "Asia/Ho_Chi_Minh")
        #expect(c.motion.rules.zone.count == ActivityGrid.cells, "no zone: the whole picture")
    }

    @Test func everyKeyIsRead() throws {
        let c = try JunctionConfiguration.parse("""
            [device]
            id = "thaithuy-0042"
            time_zone = "Asia/Bangkok"
            [camera]
            url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
            [motion]
            enabled = true
            zones = [[0.0, 0.55, 1.0, 0.55, 1.0, 1.0, 0.0, 1.0], [0.01, 0.01, 0.02, 0.01, 0.02, 0.02]]
            cells = [15]
            schedule = ["22:00-05:00", "12:00-13:30"]
            threshold = 2
            min_seconds = 3
            pre_roll_seconds = 5
            post_roll_seconds = 6
            max_pin_seconds_per_hour = 300
            """)
        #expect(c.device.timeZone == "Asia/Bangkok")
        #expect(c.motion.enabled && c.activity.enabled, "motion turns the activity index on")
        #expect(c.motion.zones.count == 2 && c.motion.zones[0].count == 4)
        #expect(c.motion.schedule == [DailyWindow(startMinute: 1320, endMinute: 300), DailyWindow(startMinute: 720, endMinute: 810)])
        #expect(c.motion.threshold == 2 && c.motion.minSeconds == 3 && c.motion.preRollSeconds == 5 && c.motion.postRollSeconds == 6)
        #expect(c.motion.maxPinSecondsPerHour == 300)
        let zone = c.motion.rules.zone
        // Rows 5–8 (centres below 0.55), cell 0 (the tiny zone's corners) and cell 15.
        #expect(zone.count == 4 * 16 + 2, "\(zone.count) cells")
        #expect(zone[0] && zone[15] && zone[5 * 16] && zone[143] && !zone[4 * 16 + 3])
    }

    @Test func badValuesAreRefusedWithWhatToWrite() {
        let cases: [(String, String, String)] = [
            ("[motion]\nenabled = 1", "motion.enabled", "true or false"),
            ("[motion]\nzones = [0.1, 0.2]", "motion.zones", "zone 1 is not a list"),
            ("[motion]\nzones = [[0.1, 0.2, 0.3, 0.4]]", "motion.zones", "at least 3 points"),
            ("[motion]\nzones = [[0.1, 0.2, 0.3, 0.4, 0.5]]", "motion.zones", "at least 3 points"),
            ("[motion]\nzones = [[0.1, 0.2, 0.3, 0.4, 1.5, 0.5]]", "motion.zones", "off the picture"),
            ("[motion]\nzones = [[0.1, 0.2, 0.3, 0.4, \"x\", 0.5]]", "motion.zones", "at least 3 points"),
            ("[motion]\ncells = [144]", "motion.cells", "0 (top left) to 143"),
            ("[motion]\ncells = [-1]", "motion.cells", "0 (top left) to 143"),
            ("[motion]\nschedule = [\"22:00\"]", "motion.schedule", "HH:MM-HH:MM"),
            ("[motion]\nschedule = [\"25:00-05:00\"]", "motion.schedule", "HH:MM-HH:MM"),
            ("[motion]\nschedule = [\"22:60-05:00\"]", "motion.schedule", "HH:MM-HH:MM"),
            ("[motion]\nschedule = \"22:00-05:00\"", "motion.schedule", "a list"),
            ("[motion]\nthreshold = 0", "motion.threshold", "out of range"),
            ("[motion]\nthreshold = 145", "motion.threshold", "out of range"),
            ("[motion]\nmin_seconds = 601", "motion.min_seconds", "out of range"),
            ("[motion]\npre_roll_seconds = -1", "motion.pre_roll_seconds", "out of range"),
            ("[motion]\nmax_pin_seconds_per_hour = 9", "motion.max_pin_seconds_per_hour", "out of range"),
            ("[motion]\nmax_pin_seconds_per_hour = 3601", "motion.max_pin_seconds_per_hour", "out of range"),
            ("[motion]\nenabled = true\nmax_pin_seconds_per_hour = 21", "motion.max_pin_seconds_per_hour", "cannot hold one flag"),
            ("[motion]\nzone = []", "motion.zone", "unknown key"),
        ]
        for (text, key, says) in cases {
            let e = refusal(text)
            #expect(e?.key == key && e?.message.contains(says) == true && e?.line != nil, "\(text): \(String(describing: e))")
        }
    }

    @Test func anUnknownTimeZoneIsRefused() {
        do {
            _ = try JunctionConfiguration.parse("[device]\nid = \"a\"\ntime_zone = \"Mars/Olympus\"\n[camera]\nurl = \"rtsp://h/s\"\n")
            Issue.record("Mars/Olympus was taken")
        } catch {
            #expect(error.key == "device.time_zone" && error.line == 3 && error.message.contains("Asia/Ho_Chi_Minh"), "\(error)")
        }
    }

    @Test func boundsAreTakenAtTheBound() throws {
        let sixteen = (0..<16).map { _ in "[0.1, 0.1, 0.2, 0.1, 0.2, 0.2]" }.joined(separator: ", ")
        #expect(try JunctionConfiguration.parse(minimal + "\n[motion]\nzones = [\(sixteen)]\n").motion.zones.count == 16)
        #expect(refusal("[motion]\nzones = [\(sixteen), [0.1, 0.1, 0.2, 0.1, 0.2, 0.2]]")?.message.contains("at most 16") == true)
        let points = (0..<64).map { i in "\(Double(i) / 64), \(i % 2 == 0 ? 0.1 : 0.9)" }.joined(separator: ", ")
        #expect(try JunctionConfiguration.parse(minimal + "\n[motion]\nzones = [[\(points)]]\n").motion.zones[0].count == 64)
        #expect(refusal("[motion]\nzones = [[\(points), 0.5, 0.5]]")?.message.contains("at most 64") == true)
        let c = try JunctionConfiguration.parse(minimal + "\n[motion]\nenabled = true\nthreshold = 144\nmin_seconds = 0\npre_roll_seconds = 600\npost_roll_seconds = 600\nmax_pin_seconds_per_hour = 3600\nschedule = [\"00:00-24:00\"]\n")
        #expect(c.motion.threshold == 144 && c.motion.maxPinSecondsPerHour == 3600)
        let tight = try JunctionConfiguration.parse(minimal + "\n[motion]\nenabled = true\nmax_pin_seconds_per_hour = 22\n")
        #expect(tight.motion.maxPinSecondsPerHour == 22, "10 + 10 s of rolls and 2 s of movement fit 22 s exactly")
        #expect(c.motion.schedule[0].contains(minute: 0) && c.motion.schedule[0].contains(minute: 1439), "00:00-24:00 is the whole day")
    }
}
