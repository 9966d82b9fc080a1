import Foundation
import Testing
import Wire

@Suite struct HeartbeatTests {
    let t = Timestamp(rfc3339: "2026-11-29T10:00:00Z")!

    @Test func paintLayersOverBaseAndMergesNeighbours() {
        let spans = Coverage.paint(from: t, to: t + 100, base: .notRecorded, layers: [
            CoverageSpan(from: t - 50, to: t + 20, status: .evicted),
            CoverageSpan(from: t + 10, to: t + 30, status: .pending),
            CoverageSpan(from: t + 30, to: t + 40, status: .pending),     // merged with the one before
            CoverageSpan(from: t + 15, to: t + 25, status: .uploaded),    // on top
            CoverageSpan(from: t + 90, to: t + 200, status: .pending),    // clipped to the range
        ])
        #expect(spans == [
            CoverageSpan(from: t, to: t + 10, status: .evicted),
            CoverageSpan(from: t + 10, to: t + 15, status: .pending),
            CoverageSpan(from: t + 15, to: t + 25, status: .uploaded),
            CoverageSpan(from: t + 25, to: t + 40, status: .pending),
            CoverageSpan(from: t + 40, to: t + 90, status: .notRecorded),
            CoverageSpan(from: t + 90, to: t + 100, status: .pending),
        ])
        #expect(Coverage.paint(from: t, to: t, base: .pending, layers: []) == [])
        #expect(!Coverage.isSettled(spans))
        #expect(Coverage.isSettled([CoverageSpan(from: t, to: t + 1, status: .evicted)]))
    }

    /// The JSON keys are a contract with the commune server: snake_case, RFC 3339.
    @Test func wireFormIsSnakeCase() throws {
        let report = Heartbeat.Report(device: "d1", health: .init(recording: "recording", pinnedBytes: 5, version: "0.1.0", sentAt: t),
                                      requests: [.init(id: "r1", coverage: [CoverageSpan(from: t, to: t + 1, status: .notRecorded)])])
        let text = String(decoding: try Heartbeat.encode(report), as: UTF8.self)
        #expect(text.contains("\"pinned_bytes\":5") && text.contains("\"status\":\"not_recorded\"") && text.contains("\"from\":\"2026-11-29T10:00:00"))
        #expect(try Heartbeat.decode(Heartbeat.Report.self, from: Heartbeat.encode(report)) == report)
    }
}
