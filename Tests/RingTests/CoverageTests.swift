import Foundation
import Testing
@testable import Ring

@Suite struct CoverageTests {
    @Test func requestSpanningRecordedGapEvictedAndFuture() async throws {
        let ring = try await Ring.open(Ring.Configuration(root: makeRoot(), budget: .bytes(100_000_000), reserveBytes: 0),
                                       logger: .init(label: "t"))
        var segs: [Segment] = []
        for i in 0..<6 { segs.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }   // [0,24)
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 24, end: t0 + 32, reason: "camera unreachable"))
        for i in 8..<10 { segs.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }  // [32,40)
        try await ring.markUploaded(segmentID: segs[2].id)                                                            // [8,12)
        try await ring.evict([segs[0], segs[1]])                                                                        // [0,8)

        let spans = try await ring.coverage(camera: "cam1", from: t0 - 10, to: t0 + 50, recording: true, now: t0 + 41)
        let expected: [(Double, Double, CoverageSpan.Status)] = [
            (-10, 0, .notRecorded),   // before the box had footage
            (0, 8, .evicted),         // overwritten by the ring
            (8, 12, .uploaded),
            (12, 24, .pending),
            (24, 32, .notRecorded),   // the camera was down
            (32, 50, .pending),       // recorded, then still being recorded
        ]
        #expect(spans == expected.map { CoverageSpan(from: t0 + $0.0, to: t0 + $0.1, status: $0.2) })

        // Not recording: what is after the newest segment and before now was never recorded.
        let stopped = try await ring.coverage(camera: "cam1", from: t0 + 36, to: t0 + 50, recording: false, now: t0 + 45)
        #expect(stopped == [CoverageSpan(from: t0 + 36, to: t0 + 40, status: .pending),
                            CoverageSpan(from: t0 + 40, to: t0 + 45, status: .notRecorded),
                            CoverageSpan(from: t0 + 45, to: t0 + 50, status: .pending)])
        #expect(!Coverage.isSettled(spans))
        await ring.close()
    }

    @Test func requestFlagIsFoundByItsID() async throws {
        let ring = try await Ring.open(Ring.Configuration(root: makeRoot(), budget: .bytes(100_000_000), reserveBytes: 0),
                                       logger: .init(label: "t"))
        _ = try await ring.commit(try FakeSegment.write(ring, start: t0))
        #expect(try await ring.flag(requestID: "r1") == nil)
        let f = try await ring.flag(.init(camera: "cam1", from: t0, to: t0 + 2, source: .request, requestID: "r1"), now: t0 + 10)
        #expect(try await ring.flag(requestID: "r1")?.id == f.id)
        await ring.close()
    }
}
