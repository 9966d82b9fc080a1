import Foundation
import Logging
import Testing
@testable import Ring

/// Each test gets a storage root of its own under /tmp.
func makeRoot() -> String {
    let dir = NSTemporaryDirectory() + "ring-test-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func openRing(_ root: String, budget: Ring.Configuration.Budget = .bytes(100_000_000)) async throws -> Ring {
    try await Ring.open(Ring.Configuration(root: root, budget: budget, reserveBytes: 0), logger: Logger(label: "test"))
}

let t0 = Timestamp(rfc3339: "2026-11-29T10:00:00Z")!

@Suite struct RingTests {
    @Test func commitThenQueryByTime() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        for i in 0..<3 {
            try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))
        }
        let all = try await ring.segments()
        #expect(all.count == 3)
        #expect(all[0].path.hasPrefix("cam1/2026-11-29/10/"))
        #expect(all[1].start == t0 + 4 && all[1].end == t0 + 8)
        let some = try await ring.segments(from: t0 + 5, to: t0 + 6)
        #expect(some.map(\.start) == [t0 + 4])
        #expect(try await ring.check(deep: true).isEmpty)
        await ring.close()
    }

    /// Looking creates nothing: a read-only open where no index was ever made sees an empty
    /// ring and leaves the card as it was; once the recorder made one, the same open reads it.
    @Test func aReadOnlyOpenCreatesNothingWhereNothingWasRecorded() async throws {
        let root = makeRoot() + "/never-recorded"
        let configuration = Ring.Configuration(root: root, budget: .bytes(100_000_000), reserveBytes: 0)
        let looking = try await Ring.open(configuration, creating: false, logger: Logger(label: "test"))
        #expect(!looking.exists)
        let segments = try await looking.segments(), usage = try await looking.usage()
        #expect(segments.isEmpty && usage.segments == 0)
        #expect(try await looking.check(deep: false).isEmpty)
        await looking.close()
        #expect(!FileManager.default.fileExists(atPath: root), "nothing was made on the card")
        let recorder = try await Ring.open(configuration, logger: Logger(label: "test"))
        try await recorder.commit(try FakeSegment.write(recorder, start: t0))
        await recorder.close()
        let again = try await Ring.open(configuration, creating: false, logger: Logger(label: "test"))
        let found = try await again.segments()
        #expect(again.exists && found.count == 1)
        await again.close()
    }

    /// I2 and eviction order: oldest unpinned first, pinned kept, usage within budget.
    @Test func evictsOldestUnpinnedWithinBudget() async throws {
        let root = makeRoot()
        // Each fake segment is ~80 kB; headroom is at least 1 MB.
        let ring = try await openRing(root, budget: .bytes(1_500_000))
        var committed: [Segment] = []
        for i in 0..<12 {
            committed.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4))))
            if i == 1 {
                _ = try await ring.index.run("UPDATE segment SET flagged = 1 WHERE id = ?", [.integer(Int(committed[1].id))])
            }
            try await ring.enforceRetention()
        }
        let left = try await ring.segments()
        let usage = try await ring.usage()
        #expect(usage.ringBytes + usage.headroomBytes <= usage.budgetBytes)
        #expect(left.contains { $0.id == committed[1].id }, "the flagged segment must survive")
        #expect(!left.contains { $0.id == committed[0].id }, "the oldest unflagged segment goes first")
        #expect(left.last?.id == committed[11].id)
        let kept = left.filter { $0.id != committed[1].id }.map(\.id)
        #expect(kept == Array(committed.map(\.id).suffix(kept.count)), "survivors are the newest")
        for c in committed where !left.contains(where: { $0.id == c.id }) {
            #expect(!FileManager.default.fileExists(atPath: ring.path(of: c)), "evicted file is unlinked")
        }
        #expect(try await ring.check(deep: false).isEmpty)
        await ring.close()
    }

    @Test func onlyPinnedLeftIsReported() async throws {
        let root = makeRoot()
        let ring = try await openRing(root, budget: .bytes(1_000_000))
        let s = try await ring.commit(try FakeSegment.write(ring, start: t0, payload: 100_000))
        _ = try await ring.index.run("UPDATE segment SET flagged = 1 WHERE id = ?", [.integer(Int(s.id))])
        let result = try await ring.enforceRetention()
        #expect(result.blockedByPins)
        #expect(try await ring.segments().count == 1)
        await ring.close()
    }

    /// I3: a torn segment (power cut mid-fragment) is cut back to its last whole fragment.
    @Test func recoversTornSegment() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let o = FakeSegment.origin(t0)
        let path = try ring.prepareSegmentPath(for: o)
        let whole = FakeSegment.bytes(origin: o, fragments: 3)
        let torn = whole + Array(FakeSegment.fragment(index: 3).prefix(5000))
        try Data(torn).write(to: URL(fileURLWithPath: path))

        let findings = try await ring.recover()
        #expect(findings.map(\.kind) == [.tornSegmentRepaired])
        let rows = try await ring.segments()
        #expect(rows.count == 1)
        #expect(rows[0].bytes == Int64(whole.count))
        #expect(rows[0].recovered)
        #expect(rows[0].start == t0 && rows[0].end == t0 + 3)
        #expect(rows[0].sha256 == (try FileSystem.sha256(path)))
        #expect(FileSystem.size(path) == Int64(whole.count))
        #expect(try await ring.check(deep: true).isEmpty)
        await ring.close()
    }

    @Test func orphanWithWholeFragmentsIsIndexedGarbageIsRemoved() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let good = try FakeSegment.write(ring, start: t0)  // written, never committed
        let o2 = FakeSegment.origin(t0 + 10)
        let bad = try ring.prepareSegmentPath(for: o2)
        try Data(FakeSegment.header(origin: o2).prefix(30)).write(to: URL(fileURLWithPath: bad))

        let findings = try await ring.recover()
        #expect(Set(findings.map(\.kind)) == [.orphanIndexed, .orphanRemoved])
        #expect(try await ring.segments().map(\.path) == [ring.relative(good.path)])
        #expect(!FileManager.default.fileExists(atPath: bad))
        await ring.close()
    }

    /// I4: a row whose file is gone is dropped.
    @Test func rowWithoutFileIsDropped() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let a = try await ring.commit(try FakeSegment.write(ring, start: t0))
        let b = try await ring.commit(try FakeSegment.write(ring, start: t0 + 4))
        try FileManager.default.removeItem(atPath: ring.path(of: a))
        #expect(try await ring.check(deep: false).map(\.kind) == [.rowWithoutFile])
        let findings = try await ring.recover()
        #expect(findings.map(\.kind) == [.rowWithoutFile])
        #expect(try await ring.segments().map(\.id) == [b.id])
        await ring.close()
    }

    /// A power cut between "mark deleting" and "drop row": recovery finishes the deletion.
    @Test func halfDeletedSegmentIsFinished() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let a = try await ring.commit(try FakeSegment.write(ring, start: t0))
        try await ring.index.markDeleting([a.id])
        #expect(try await ring.check(deep: false).map(\.kind) == [.halfDeleted])
        let findings = try await ring.recover()
        #expect(findings.map(\.kind) == [.halfDeleted])
        #expect(try await ring.segments().isEmpty)
        #expect(try await ring.index.deleting().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: ring.path(of: a)))
        await ring.close()
    }

    @Test func deepCheckFindsAlteredFile() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let a = try await ring.commit(try FakeSegment.write(ring, start: t0))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: ring.path(of: a)))
        try handle.seek(toOffset: UInt64(a.bytes - 10))
        try handle.write(contentsOf: Data([0xde, 0xad]))
        try handle.close()
        #expect(try await ring.check(deep: false).isEmpty)
        #expect(try await ring.check(deep: true).map(\.kind) == [.hashMismatch])
        await ring.close()
    }

    @Test func reindexRebuildsFromFilesAlone() async throws {
        let root = makeRoot()
        var ring = try await openRing(root)
        var before: [Segment] = []
        for i in 0..<3 { before.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }
        await ring.close()
        // Lose the index entirely.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: root + "/index.sqlite" + suffix) }
        ring = try await openRing(root)
        #expect(try await ring.segments().isEmpty)
        let (count, findings) = try await ring.reindex()
        #expect(count == 3 && findings.isEmpty)
        let after = try await ring.segments()
        #expect(after.map(\.path) == before.map(\.path))
        #expect(after.map(\.start) == before.map(\.start))
        #expect(after.map(\.end) == before.map(\.end))
        #expect(after.map(\.sha256) == before.map(\.sha256))
        #expect(after.map(\.bootID) == before.map(\.bootID))
        await ring.close()
    }

    @Test func gapsAreStoredAndQueried() async throws {
        let ring = try await openRing(makeRoot())
        try await ring.recordGap(Gap(camera: "cam1", start: t0, end: t0 + 7, reason: "camera stopped"))
        let gaps = try await ring.gaps(from: t0 + 1, to: t0 + 2)
        #expect(gaps == [Gap(camera: "cam1", start: t0, end: t0 + 7, reason: "camera stopped")])
        await ring.close()
    }
}

@Suite struct TimeTests {
    @Test func rfc3339RoundTrip() {
        let t = Timestamp(rfc3339: "2026-11-29T14:02:05.250Z")!
        #expect(t.rfc3339 == "2026-11-29T14:02:05.250Z")
        #expect(Timestamp(rfc3339: "2026-11-29T21:02:05.25+07:00") == t)
        #expect(Timestamp(rfc3339: "2024-02-29T00:00:00Z")!.day == "2024-02-29")
        #expect(Timestamp(rfc3339: "1969-12-31T23:59:59Z")!.milliseconds == -1000)
        #expect(Timestamp(rfc3339: "2026-13-01T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "yesterday") == nil)
        #expect(t.compact == "20261129T140205.250Z")
    }

    @Test func technicianTimes() throws {
        let now = Timestamp(rfc3339: "2026-11-29T15:30:00Z")!
        #expect(try TimeExpression.parse("-10m", now: now) == Timestamp(rfc3339: "2026-11-29T15:20:00Z"))
        #expect(try TimeExpression.parse("-2h", now: now) == Timestamp(rfc3339: "2026-11-29T13:30:00Z"))
        // Vietnam is UTC+7: 21:40 local is 14:40Z.
        #expect(try TimeExpression.parse("21:40", now: now, utcOffsetSeconds: 7 * 3600) == Timestamp(rfc3339: "2026-11-29T14:40:00Z"))
        #expect(try TimeExpression.parse("2026-11-28 08:00:30", now: now, utcOffsetSeconds: 7 * 3600) == Timestamp(rfc3339: "2026-11-28T01:00:30Z"))
        #expect(try TimeExpression.parse("2026-11-29T14:02:00Z", now: now) == Timestamp(rfc3339: "2026-11-29T14:02:00Z"))
        #expect(throws: TimeExpression.ParseError.self) { try TimeExpression.parse("25:00", now: now) }
        #expect(throws: TimeExpression.ParseError.self) { try TimeExpression.parse("-10x", now: now) }
    }
}

@Suite struct ScannerTests {
    @Test func scansFakeSegment() throws {
        let root = makeRoot()
        let path = root + "/a.mp4"
        let o = FakeSegment.origin(t0)
        try Data(FakeSegment.bytes(origin: o, fragments: 3)).write(to: URL(fileURLWithPath: path))
        let scan = try MP4Scanner.scan(path: path)
        #expect(scan.fragments == 3)
        #expect(scan.durationSeconds == 3)
        #expect(scan.comment.flatMap(SegmentOrigin.init(comment:)) == o)
        #expect(scan.videoFormat == "avc1")
        #expect(!scan.isTorn)
    }
}

@Suite struct RetimeTests {
    /// Recorded with a wrong clock (box booted without RTC), then NTP syncs: the boot's
    /// unsynchronised segments move to the true time, others are left alone.
    @Test func retimesUnsynchronisedSegmentsOfThisBoot() async throws {
        let ring = try await openRing(makeRoot())
        let wrong = Timestamp(rfc3339: "1970-01-01T00:10:00Z")!
        var o = SegmentOrigin(camera: "cam1", start: wrong, monotonicNanos: 600_000_000_000, bootID: "boot-A", clockSynchronized: false, codec: "h264")
        let a = try await ring.index.insert(relativePath: "a.mp4", origin: o, end: wrong + 10, bytes: 10, sha256: String(repeating: "0", count: 64), recovered: false)
        o.bootID = "boot-B"
        let b = try await ring.index.insert(relativePath: "b.mp4", origin: o, end: wrong + 10, bytes: 10, sha256: String(repeating: "0", count: 64), recovered: false)
        // Synced at monotonic 700 s, true time 2026-11-29T10:00:00Z: the segment began 100 s before.
        let n = try await ring.retime(bootID: "boot-A", now: t0, monotonicNanos: 700_000_000_000)
        #expect(n == 1)
        let rows = try await ring.segments()
        let ra = rows.first { $0.id == a.id }!, rb = rows.first { $0.id == b.id }!
        #expect(ra.start == t0 + -100 && ra.end == t0 + -90 && ra.clockSynchronized)
        #expect(rb.start == wrong && !rb.clockSynchronized)
        await ring.close()
    }
}
