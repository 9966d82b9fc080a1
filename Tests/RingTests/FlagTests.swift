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

/// The index's one front door: a flag is one transaction, so flags made at the same moment (the
/// CLI, a commune request and motion together) cannot both pass the pin cap.
@Suite struct IndexTransactionTests {
    @Test func concurrentFlagsNeverPassThePinCapTogether() async throws {
        // A 200 kB cap holds two ~80 kB segments; six flags of one segment each arrive at once.
        let (ring, segs) = try await FlagTests().ringWithSegments(budget: 2_000_000, maxPinnedPercent: 10)
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<6 {
                group.addTask {
                    do {
                        _ = try await ring.flag(.init(camera: "cam1", from: t0 + Double(i * 4) + 1, to: t0 + Double(i * 4) + 2), now: t0 + 30)
                        return true
                    } catch { return false }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        let usage = try await ring.usage()
        #expect(outcomes.filter { $0 }.count == 2, "exactly two fit under the cap: \(outcomes)")
        #expect(usage.pinnedBytes <= usage.pinnedCapBytes, "pinned \(usage.pinnedBytes) of a \(usage.pinnedCapBytes) cap")
        #expect(try await ring.flags().count == 2, "a refused flag leaves no row")
        #expect(try await ring.segments().filter(\.flagged).count == 2)
        _ = segs
        await ring.close()
    }

    @Test func aFailedTransactionLeavesNothingAndTakesNoOtherStatementWithIt() async throws {
        let ring = try await Ring.open(Ring.Configuration(root: makeRoot(), budget: .bytes(100_000_000), reserveBytes: 0),
                                       logger: .init(label: "t"))
        let index = await ring.index
        let insideTransaction = AsyncStream<Void>.makeStream()
        async let failed: Void = {
            do {
                try await index.transaction { db throws(RingError) in
                    _ = try await db.run("INSERT INTO gap (camera, start_ms, end_ms, reason) VALUES ('cam1', 0, 1, 'inside')")
                    insideTransaction.continuation.yield()
                    try? await Task.sleep(for: .milliseconds(200))
                    throw RingError(.index, "simulated failure after the first statement")
                }
            } catch {}
        }()
        var it = insideTransaction.stream.makeAsyncIterator()
        _ = await it.next()
        // Arrives while the transaction is open: it waits at the gate, then stands alone.
        try await ring.recordGap(Gap(camera: "cam1", start: t0, end: t0 + 1, reason: "outside"))
        await failed
        let reasons = try await ring.gaps().map(\.reason)
        #expect(reasons == ["outside"], "the rolled-back statement is gone, the other one kept: \(reasons)")
        await ring.close()
    }
}
