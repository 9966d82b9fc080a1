import Foundation
import Logging
import Testing
@testable import Ring
import Wire

/// Issue 11, items 9, 10 and 11: a repair never blesses, cuts or deletes damaged footage, and
/// flags outlive the index.
@Suite struct DamageTests {
    func ringWithFlaggedSegments(_ root: String, count: Int = 4) async throws -> (Ring, [Segment]) {
        let ring = try await openRing(root)
        var segments: [Segment] = []
        for i in 0..<count { segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }
        _ = try await ring.flag(.init(camera: "cam1", from: t0 + 1, to: t0 + 6, reason: "case 17"), now: t0 + 100)
        return (ring, segments)
    }

    func garble(_ path: String, at offset: Int, bytes: [UInt8]) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try h.seek(toOffset: UInt64(offset))
        try h.write(contentsOf: Data(bytes))
        try h.close()
    }

    // Item 9: reindex keeps the hash recorded at write time; the damaged file is quarantined.
    @Test func reindexNeverStoresTheHashOfADamagedFile() async throws {
        let root = makeRoot()
        let (ring, segments) = try await ringWithFlaggedSegments(root)
        let victim = root + "/segments/" + segments[1].path
        let original = try Data(contentsOf: URL(fileURLWithPath: victim))
        try garble(victim, at: original.count - 5000, bytes: [UInt8](repeating: 0xA5, count: 4096))
        #expect(try await ring.check(deep: true).contains { $0.kind == .hashMismatch })
        let (count, findings) = try await ring.reindex()
        #expect(count == 3)
        let q = findings.filter { $0.kind == .quarantined }
        #expect(q.count == 1 && q[0].path == segments[1].path && q[0].detail.contains("SHA-256 differs"))
        // Nothing in the index vouches for the damaged bytes, and they are kept, byte for byte.
        #expect(try await ring.segments().allSatisfy { $0.path != segments[1].path })
        #expect(try await ring.check(deep: true).allSatisfy { $0.kind == .quarantined })
        let kept = try Data(contentsOf: URL(fileURLWithPath: root + "/quarantine/" + segments[1].path))
        #expect(kept.count == original.count && kept != original)
        await ring.close()
    }

    // Item 10: a changed box size or a zeroed file is neither cut back nor deleted.
    @Test func aDamagedBoxSizeOrAZeroedFileIsQuarantinedWhole() async throws {
        let root = makeRoot()
        let (ring, segments) = try await ringWithFlaggedSegments(root)
        let boxed = root + "/segments/" + segments[2].path
        let size = try Data(contentsOf: URL(fileURLWithPath: boxed)).count
        let header = FakeSegment.header(origin: FakeSegment.origin(t0)).count
        try garble(boxed, at: header + 2, bytes: [0x7F, 0x00])  // the first moof's size
        let zeroed = root + "/segments/" + segments[3].path
        let zsize = try Data(contentsOf: URL(fileURLWithPath: zeroed)).count
        try Data(count: zsize).write(to: URL(fileURLWithPath: zeroed))
        let (_, findings) = try await ring.reindex()
        #expect(findings.filter { $0.kind == .quarantined }.count == 2, "\(findings)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/quarantine/" + segments[2].path)).count == size)
        #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/quarantine/" + segments[3].path)).count == zsize)
        // Start-up recovery does the same with a finished segment that changed size.
        let third = root + "/segments/" + segments[0].path
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: third))
        try h.truncate(atOffset: 100_000 > size ? UInt64(size / 2) : 100_000)
        try h.close()
        let recovered = try await ring.recover()
        #expect(recovered.contains { $0.kind == .quarantined && $0.path == segments[0].path }, "\(recovered)")
        #expect(FileManager.default.fileExists(atPath: root + "/quarantine/" + segments[0].path))
        await ring.close()
    }

    // Item 11: flags and pins survive losing the index.
    @Test func flagsAndPinsSurviveARebuiltIndex() async throws {
        let root = makeRoot()
        var (ring, segments) = try await ringWithFlaggedSegments(root)
        let second = try await ring.flag(.init(camera: "cam1", from: t0 + 13, to: t0 + 14, reason: "case 18"), now: t0 + 100)
        _ = try await ring.unflag(id: second.id)
        try await ring.markUploaded(segmentID: segments[0].id)
        let flagsBefore = try await ring.flags(includeReleased: true)
        let pinnedBefore = try await ring.segments().filter { $0.flagged }.map(\.path)
        #expect(pinnedBefore.count == 2)
        await ring.close()
        // The index truncated to half, as in the report: moved aside, a new one built.
        let index = root + "/index.sqlite"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: index))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: index))
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: index + suffix) }
        try FileManager.default.moveItem(atPath: index, toPath: index + ".broken-test")
        ring = try await openRing(root)
        let (count, _) = try await ring.reindex()
        #expect(count == 4)
        let flagsAfter = try await ring.flags(includeReleased: true)
        #expect(flagsAfter.map(\.id) == flagsBefore.map(\.id))
        #expect(flagsAfter.map(\.reason) == flagsBefore.map(\.reason))
        #expect(flagsAfter.map(\.state) == flagsBefore.map(\.state))
        let after = try await ring.segments()
        #expect(after.filter { $0.flagged }.map(\.path) == pinnedBefore)
        #expect(after.first { $0.path == segments[0].path }?.uploaded == true)
        #expect(try await ring.check(deep: false).contains { $0.kind == .indexRebuilt })
        await ring.close()
    }
}
