import Foundation
import Synchronization
import Testing
@testable import JunctionCLI
@testable import Ring

/// Issue 22, item 20: which zone the CLI reads and shows times in.
@Suite struct TimeZoneChoiceTests {
    let t = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!

    @Test func aTZThatNamesNoZoneIsSaidAndNotUsed() {
        let said = Mutex<[String]>([])
        let offset = BoxOptions.zone(tz: "Mars/Olympus", configured: "Asia/Ho_Chi_Minh", warn: { w in said.withLock { $0.append(w) } })
        #expect(offset(t) == 7 * 3600, "the configured zone, not UTC")
        #expect(said.withLock { $0.count == 1 && $0[0].contains("Mars/Olympus") && $0[0].contains("Asia/Ho_Chi_Minh") })
        #expect(BoxOptions.zone(tz: ":Europe/Berlin", configured: "Asia/Ho_Chi_Minh", warn: { _ in Issue.record("warned") })(t) == 3600, "a real TZ wins")
        #expect(BoxOptions.zone(tz: nil, configured: "Asia/Ho_Chi_Minh", warn: { _ in })(t) == 7 * 3600)
        #expect(BoxOptions.zone(tz: "Asia/Ho_Chi_Minh\u{0}", configured: "UTC", warn: { _ in })(t) == 0, "a NUL is no zone")
    }
}
