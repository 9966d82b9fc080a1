import SystemCrypto
import Evidence
import Foundation
import Logging
import Testing
@testable import Ring

/// The ring seals what the recorder finishes (issue 13): each segment file gets its seal box,
/// each segment and gap a record in the index, one chain that an offline verifier accepts.
@Suite struct ChainTests {
    @Test func segmentsAndGapsAreSealedIntoOneChain() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let before = try await ring.commit(try FakeSegment.write(ring, start: t0))
        let none = try await ring.chainHead()
        #expect(none == nil, "nothing is sealed before the recorder asks")
        #expect(SealBox.find(path: ring.path(of: before)) == nil)
        await ring.startSealing(key: key, device: "thaithuy-0042")
        var segments: [Segment] = []
        for i in 0..<2 { segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(10 + i * 4)))) }
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 18, end: t0 + 30, reason: "camera down"))
        segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + 30)))

        let sealed = try await ring.chain()
        let (records, findings) = ChainVerifier.verify(sealed, key: key.publicKey, device: "thaithuy-0042")
        #expect(findings.isEmpty, "\(findings)")
        #expect(records.map(\.kind) == [.segment, .segment, .gap, .segment] && records.map(\.seq) == [1, 2, 3, 4])
        #expect(records[2].reason == "camera down" && records[2].start == t0 + 18)
        for (segment, record) in zip(segments, records.filter { $0.kind == .segment }) {
            let path = ring.path(of: segment)
            let seal = try #require(SealBox.find(path: path), "the file carries its seal")
            #expect(seal.seal.record == sealed[Int(record.seq) - 1].body && seal.offset == record.mediaBytes)
            #expect(ChainVerifier.verifyFile(path: path, record: record) == nil)
            let fileSHA = try FileSystem.sha256(path), fileBytes = Int64(try Data(contentsOf: URL(fileURLWithPath: path)).count)
            #expect(segment.sha256 == fileSHA && segment.bytes == fileBytes, "the index holds the whole file as it is now, seal included")
            #expect(record.pieces?.count == 5, "the header and four fragments")
        }
        #expect(try await ring.check(deep: true).isEmpty, "a sealed file is a whole segment to check and recovery")
        let scan = try MP4Scanner.scan(path: ring.path(of: segments[0]))
        #expect(!scan.isTorn && scan.fragments == 4)
        await ring.close()

        // The chain goes on from its head after a restart.
        let again = try await openRing(root)
        await again.startSealing(key: key, device: "thaithuy-0042")
        _ = try await again.commit(try FakeSegment.write(again, start: t0 + 40))
        let all = try await again.chain()
        #expect(all.count == 5 && ChainVerifier.verify(all, key: key.publicKey, device: "thaithuy-0042").findings.isEmpty)
        await again.close()
    }

    /// Issue 24: every record names the software that made it, so a court can tell which
    /// release sealed a clip; after an update the records say the new one from its first boot.
    @Test func eachRecordNamesTheReleaseThatMadeIt() async throws {
        let root = makeRoot()
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await openRing(root)
        await ring.startSealing(key: key, device: "box", software: "junction 1.0.0 slot a")
        _ = try await ring.commit(try FakeSegment.write(ring, start: t0))
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 4, end: t0 + 10, reason: "box off"))
        await ring.close()
        let updated = try await openRing(root)
        await updated.startSealing(key: key, device: "box", software: "junction 1.2.0 slot b")
        _ = try await updated.commit(try FakeSegment.write(updated, start: t0 + 10))
        // A release file that is not a name (a control character) is left out, never written.
        await updated.startSealing(key: key, device: "box", software: "junction \u{1b}[2J")
        _ = try await updated.commit(try FakeSegment.write(updated, start: t0 + 14))
        let (records, findings) = ChainVerifier.verify(try await updated.chain(), key: key.publicKey, device: "box")
        #expect(findings.isEmpty)
        #expect(records.map(\.software) == ["junction 1.0.0 slot a", "junction 1.0.0 slot a", "junction 1.2.0 slot b", nil])
        await updated.close()
    }

    /// The software a record names is bounded where it is read: 1–64 printable ASCII bytes.
    @Test func theSoftwareARecordNamesIsBoundedAtItsBound() throws {
        func body(_ software: String) -> String {
            ChainRecord(device: "box", seq: 1, prev: ChainRecord.genesis, kind: .gap, camera: "cam1", start: t0, end: t0 + 1,
                        clockSynchronized: true, reason: "box off", software: software).body()
        }
        let longest = "junction " + String(repeating: "9", count: ChainRecord.maxSoftwareBytes - 9)
        #expect(try ChainRecord.parse(body(longest)).software == longest, "64 bytes: read")
        for bad in [longest + "9", "", "junction\n1.0", "junction \u{1b}[2J", "junction 1.0 ✓"] {
            #expect(throws: ChainError.self, "\(bad.debugDescription)") { try ChainRecord.parse(body(bad)) }
        }
    }

    /// Migration 9 on an index made before it: each segment learns its record from the chain,
    /// and the upload queue names it as before.
    @Test func anIndexFromBeforeMigrationNineKeepsEachSegmentsRecord() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        await ring.startSealing(key: DeviceKey(Curve25519.Signing.PrivateKey()), device: "box")
        for i in 0..<3 { _ = try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4))) }
        // Back to schema 8: no preview table, no chain_seq on segments, the chain's two indexes.
        for sql in ["DROP TABLE key_binding", "ALTER TABLE countersign DROP COLUMN device_key", "ALTER TABLE segment DROP COLUMN damaged_sha256", "DROP TABLE commune_key", "ALTER TABLE countersign DROP COLUMN kept_ms", "DROP TABLE preview", "ALTER TABLE segment DROP COLUMN activity", "ALTER TABLE segment DROP COLUMN chain_seq", "CREATE INDEX chain_time ON chain (camera, start_ms)",
                    "CREATE INDEX chain_segment ON chain (segment_path)", "PRAGMA user_version = 8"] {
            _ = try await ring.index.run(sql)
        }
        await ring.close()
        let again = try await openRing(root)
        let seqs = try await again.index.run("SELECT chain_seq FROM segment ORDER BY start_ms").map { $0.column("chain_seq")?.integer }
        #expect(seqs == [1, 2, 3], "\(seqs)")
        let indexes = try await again.index.run("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'chain'")
        #expect(indexes.isEmpty, "the chain keeps no secondary index")
        _ = try await again.flag(.init(camera: "cam1", from: t0, to: t0 + 12, reason: "x"), now: t0 + 60)
        #expect(try await again.uploadQueue().map(\.chainSeq) == [1, 2, 3])
        await again.close()
    }

    /// Records are filed in the chain table twelve at a time (the card writes the chain's newest
    /// page once a batch, not once a segment); until then the ring, and another process reading
    /// the same index (`junction export`, `status`), see them all the same.
    @Test func recordsAreFiledTwelveAtATimeAndSeenBefore() async throws {
        let root = makeRoot()
        let ring = try await openRing(root)
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        await ring.startSealing(key: key, device: "box")
        for i in 0..<11 { _ = try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4))) }
        let filed = { () async throws -> Int in try await ring.index.run("SELECT COUNT(*) AS n FROM chain").first?.column("n")?.integer ?? -1 }
        #expect(try await filed() == 0, "11 records wait in their seal boxes")
        let own = try await ring.chain(), ownHead = try await ring.chainHead()
        #expect(own.count == 11 && ownHead?.seq == 11)
        let reader = try await openRing(root)
        let seen = try await reader.chain()
        #expect(seen.count == 11 && ChainVerifier.verify(seen, key: key.publicKey, device: "box").findings.isEmpty,
                "another reader takes them from the newest files' seal boxes")
        #expect(try await reader.chainHead()?.seq == 11)
        #expect(try await reader.chainRecords(from: t0 + 41, to: t0 + 43).count >= 1, "an export of the newest seconds carries their record")
        await reader.close()
        _ = try await ring.commit(try FakeSegment.write(ring, start: t0 + 44))
        #expect(try await filed() == 12, "the twelfth segment files all twelve")
        _ = try await ring.commit(try FakeSegment.write(ring, start: t0 + 48))
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 52, end: t0 + 60, reason: "camera down"))
        #expect(try await filed() == 14, "a gap's record follows the segment's before it")
        await ring.close()
    }

    /// A crash (kill -9, a power cut) loses the waiting list, not the records: the next start
    /// files them from their seal boxes before it seals anything new.
    @Test func aCrashLeavesRecordsThatRecoveryFilesFromTheirSealBoxes() async throws {
        let root = makeRoot()
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let crashed = try await openRing(root)
        await crashed.startSealing(key: key, device: "box")
        for i in 0..<5 { _ = try await crashed.commit(try FakeSegment.write(crashed, start: t0 + Double(i * 4))) }
        // No close: the next run opens the index as the crash left it.
        let next = try await openRing(root)
        await next.startSealing(key: key, device: "box")
        _ = try await next.recover()
        #expect(try await next.index.run("SELECT COUNT(*) AS n FROM chain").first?.column("n")?.integer == 5)
        _ = try await next.commit(try FakeSegment.write(next, start: t0 + 20))
        let chain = try await next.chain()
        let (records, findings) = ChainVerifier.verify(chain, key: key.publicKey, device: "box")
        #expect(findings.isEmpty && records.map(\.seq) == [1, 2, 3, 4, 5, 6], "\(findings)")
        await next.close()
        await crashed.index.close()  // its connection only: the crashed run never filed its list
    }

    /// `reindex` keeps the chain and each segment's name for its record (the upload carries it).
    @Test func reindexKeepsEachSegmentsRecord() async throws {
        let ring = try await openRing(makeRoot())
        await ring.startSealing(key: DeviceKey(Curve25519.Signing.PrivateKey()), device: "box")
        for i in 0..<2 { _ = try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4))) }
        let (count, findings) = try await ring.reindex()
        #expect(count == 2 && findings.isEmpty, "\(findings)")
        _ = try await ring.flag(.init(camera: "cam1", from: t0, to: t0 + 8, reason: "x"), now: t0 + 60)
        #expect(try await ring.uploadQueue().map(\.chainSeq) == [1, 2])
        await ring.close()
    }

    @Test func recordsOutliveTheFootageTheRingEvicts() async throws {
        let root = makeRoot()
        let ring = try await openRing(root, budget: .bytes(250_000))
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        await ring.startSealing(key: key, device: "box")
        for i in 0..<6 { _ = try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4))) }
        try await ring.enforceRetention()
        let left = try await ring.segments().count
        let chain = try await ring.chain()
        #expect(left < 6 && chain.count == 6, "\(left) segments left, \(chain.count) records")
        #expect(ChainVerifier.verify(chain, key: key.publicKey, device: "box").findings.isEmpty)
        await ring.close()
    }

    /// A power cut after the seal was appended but before the index took the segment, and one
    /// before the seal: recovery puts the first record back from the file and seals the second.
    @Test func recoveryTakesSealsFromTheFilesAndSealsWhatWasLeftUnsealed() async throws {
        let root = makeRoot()
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await openRing(root)
        await ring.startSealing(key: key, device: "box")
        _ = try await ring.commit(try FakeSegment.write(ring, start: t0))
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 4, end: t0 + 10, reason: "camera down"))
        let sealedAlready = try await ring.commit(try FakeSegment.write(ring, start: t0 + 10))
        // The cut: the index loses the last segment's row and record, as if the insert never ran.
        try await ring.fileWaiting()
        _ = try await ring.index.run("DELETE FROM segment WHERE id = ?", [.integer(Int(sealedAlready.id))])
        _ = try await ring.index.run("DELETE FROM chain WHERE seq = 3")
        let unsealed = try FakeSegment.write(ring, start: t0 + 14)  // finished by the recorder, never committed
        let findings = try await ring.recover()
        #expect(findings.filter { $0.kind == .orphanIndexed }.count == 2, "\(findings)")
        let chain = try await ring.chain()
        let (records, problems) = ChainVerifier.verify(chain, key: key.publicKey, device: "box")
        #expect(problems.isEmpty && records.map(\.seq) == [1, 2, 3, 4], "\(problems) \(records.map(\.seq))")
        #expect(records[2].file == (sealedAlready.path as NSString).lastPathComponent, "record 3 came back from the file, unchanged")
        #expect(SealBox.find(path: unsealed.path) != nil && records[3].file == (unsealed.path as NSString).lastPathComponent)
        let recovered = try await ring.segments(), checked = try await ring.check(deep: true)
        #expect(recovered.count == 3 && checked.isEmpty, "\(checked)")
        await ring.close()
    }

    /// The index lost: rebuilt from the files alone, the chain comes back too, gaps included
    /// (each carried by the segment after it); a link that is gone is reported, not re-made.
    @Test func reindexRebuildsTheChainFromTheFilesAndSaysWhatIsMissing() async throws {
        let root = makeRoot()
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await openRing(root)
        await ring.startSealing(key: key, device: "box")
        try key.writePublic(to: ring.configuration.devicePublicKeyPath)
        var segments: [Segment] = []
        segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0)))
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 4, end: t0 + 20, reason: "box off"))
        segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + 20)))
        segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + 24)))
        let before = try await ring.chain()
        await ring.close()
        unlink(root + "/index.sqlite"); unlink(root + "/index.sqlite-wal"); unlink(root + "/index.sqlite-shm")

        let rebuilt = try await openRing(root)
        let (count, findings) = try await rebuilt.reindex()
        #expect(count == 3 && findings.isEmpty, "\(findings)")
        let after = try await rebuilt.chain()
        #expect(after == before, "every record, the gap's too, byte for byte")
        // A segment deleted behind the ring's back: its record is missing and the chain says so.
        await rebuilt.close()
        unlink(rebuilt.path(of: segments[1]))
        unlink(root + "/index.sqlite"); unlink(root + "/index.sqlite-wal"); unlink(root + "/index.sqlite-shm")
        let again = try await openRing(root)
        let (_, gone) = try await again.reindex()
        #expect(gone.contains { $0.kind == .chainProblem && $0.detail.contains("records 2–3 are missing") }, "\(gone)")
        await again.close()
    }

    @Test func checkNamesTheFragmentThatChangedAndAChainRecordRemoved() async throws {
        let root = makeRoot()
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await openRing(root)
        await ring.startSealing(key: key, device: "box")
        var segments: [Segment] = []
        for i in 0..<3 { segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }
        let path = ring.path(of: segments[1])
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        let header = FakeSegment.header(origin: FakeSegment.origin(t0 + 4)).count
        let fragment = FakeSegment.fragment(index: 0).count
        try handle.seek(toOffset: UInt64(header + fragment * 2 + 500))  // inside the third fragment
        try handle.write(contentsOf: Data([0xFF]))
        try handle.close()
        let deep = try await ring.check(deep: true)
        #expect(deep.contains { $0.kind == .hashMismatch && $0.detail.contains("fragment 3") }, "\(deep)")
        try await ring.fileWaiting()
        _ = try await ring.index.run("DELETE FROM chain WHERE seq = 2")
        let shallow = try await ring.check(deep: false)
        #expect(shallow.contains { $0.kind == .chainProblem && $0.detail.contains("records 2–2 are missing") }, "\(shallow)")
        await ring.close()
    }
}
