import Foundation
import Testing
@testable import Ring

@Suite struct FlagTests {
    /// Six 4-s segments from t0: [0,4) [4,8) ... [20,24).
    func ringWithSegments(budget: Int64 = 100_000_000, maxPinnedPercent: Int = 50) async throws -> (Ring, [Segment]) {
        let root = makeRoot()
        let ring = try await Ring.open(Ring.Configuration(root: root, budget: .bytes(budget), reserveBytes: 0, maxPinnedPercent: maxPinnedPercent),
                                       logger: .init(label: "t"))
        var segs: [Segment] = []
        for i in 0..<6 { segs.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }
        return (ring, segs)
    }

    @Test func pinsOverlappingSegmentsWithRolls() async throws {
        let (ring, segs) = try await ringWithSegments()
        // 9..10 s, with 2 s before and after: 7..12 s → segments [4,8) [8,12).
        let f = try await ring.flag(.init(camera: "cam1", from: t0 + 9, to: t0 + 10, reason: "accident",
                                          preRollSeconds: 2, postRollSeconds: 2), now: t0 + 30)
        #expect(f.state == .closed && f.segments == 2 && f.reason == "accident")
        let flagged = try await ring.segments().filter(\.flagged).map(\.id)
        #expect(flagged == [segs[1].id, segs[2].id])
        #expect(try await ring.usage().pinnedBytes == segs[1].bytes + segs[2].bytes)
        await ring.close()
    }

    @Test func openFlagPinsFootageAsItIsRecordedThenCloses() async throws {
        let (ring, _) = try await ringWithSegments()
        let f = try await ring.flag(.init(camera: "cam1", from: t0 + 22, to: t0 + 30), now: t0 + 24)
        #expect(f.state == .open)
        let next = try await ring.commit(try FakeSegment.write(ring, start: t0 + 24))
        #expect(next.flagged, "a segment recorded inside an open flag is pinned as it is indexed")
        #expect(try await ring.flags().first?.state == .open)
        let last = try await ring.commit(try FakeSegment.write(ring, start: t0 + 28))
        #expect(last.flagged)
        #expect(try await ring.flags().first?.state == .closed, "its end is recorded: closed")
        let after = try await ring.commit(try FakeSegment.write(ring, start: t0 + 32))
        #expect(!after.flagged)
        await ring.close()
    }

    @Test func refusedPastThePinCap() async throws {
        // Segments are ~80 kB; a 200 kB cap (10 % of 2 MB) holds two of them.
        let (ring, _) = try await ringWithSegments(budget: 2_000_000, maxPinnedPercent: 10)
        _ = try await ring.flag(.init(camera: "cam1", from: t0, to: t0 + 8), now: t0 + 30)
        await #expect {
            try await ring.flag(.init(camera: "cam1", from: t0 + 8, to: t0 + 16), now: t0 + 30)
        } throws: { error in
            let e = error as! RingError
            return e.code == .pinCapReached && e.message.contains("flag refused") && e.message.contains("junction unflag")
        }
        #expect(try await ring.flags().count == 1, "a refused flag leaves nothing behind")
        await ring.close()
    }

    @Test func unflagReleasesOnlyWhatNoOtherFlagCovers() async throws {
        let (ring, segs) = try await ringWithSegments()
        let a = try await ring.flag(.init(camera: "cam1", from: t0 + 1, to: t0 + 9), now: t0 + 30)   // segs 0,1,2
        _ = try await ring.flag(.init(camera: "cam1", from: t0 + 9, to: t0 + 11), now: t0 + 30)      // seg 2
        _ = try await ring.unflag(id: a.id)
        let flagged = try await ring.segments().filter(\.flagged).map(\.id)
        #expect(flagged == [segs[2].id])
        #expect(try await ring.flags().count == 1)
        #expect(try await ring.flags(includeReleased: true).first { $0.id == a.id }?.state == .released)
        await #expect(throws: RingError.self) { try await ring.unflag(id: 999) }
        await ring.close()
    }

    @Test func pinnedFootageSurvivesEviction() async throws {
        let (ring, segs) = try await ringWithSegments(budget: 1_300_000)
        _ = try await ring.flag(.init(camera: "cam1", from: t0, to: t0 + 4), now: t0 + 30)
        for i in 6..<12 {
            try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))
            try await ring.enforceRetention()
        }
        let left = try await ring.segments()
        #expect(left.first?.id == segs[0].id, "the flagged oldest segment stays")
        #expect(!left.contains { $0.id == segs[1].id }, "the unflagged one after it went")
        await ring.close()
    }

    @Test func rangeBeforeTheRingIsRefused() async throws {
        let (ring, _) = try await ringWithSegments()
        await #expect {
            try await ring.flag(.init(camera: "cam1", from: t0 + -100, to: t0 + -50), now: t0 + 30)
        } throws: { error in (error as! RingError).message.contains("overwritten") }
        await ring.close()
    }
}
