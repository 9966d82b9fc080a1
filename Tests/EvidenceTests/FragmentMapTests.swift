import SystemCrypto
import Foundation
import Hostile
import Testing
import Wire
@testable import Evidence

/// Issue 22: a segment the card damaged still proves its intact fragments, and says which seconds
/// the damaged ones held, even when the damage hit a box header (the cut resynchronises on the
/// next `moof`).
@Suite struct FragmentMapTests {
    let start = Timestamp(rfc3339: "2026-11-29T14:02:00Z")!

    /// A sealed 10-fragment segment (one second each), its record, seal box and key.
    func sealedSegment(fragments: Int = 10, seq: Int64 = 1) throws -> (bytes: [UInt8], starts: [Int], record: ChainRecord, seal: [UInt8], key: DeviceKey) {
        let (bytes, starts) = FragmentedMP4.segment(fragments: fragments)
        var h = PieceHasher()
        h.update(bytes)
        let (sha, pieces) = h.finish()
        #expect(pieces.count == fragments + 1)
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let record = ChainRecord(device: "thaithuy-0042", seq: seq, prev: ChainRecord.genesis, kind: .segment, camera: "cam1", start: start,
                                 end: start + Double(fragments), clockSynchronized: true, file: "a.mp4", mediaBytes: Int64(bytes.count),
                                 mediaSHA256: sha, pieces: pieces, codec: "h264")
        let seal = SealBox(sealed: try SealedRecord.seal(record, with: key), key: key.publicKeyBase64).encoded()
        return (bytes, starts, record, seal, key)
    }

    func write(_ bytes: [UInt8]) -> String {
        let path = tempPath("damaged.mp4")
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    @Test func anUntouchedSegmentHasNothingLost() throws {
        let s = try sealedSegment()
        let d = try #require(FragmentMap.damage(path: write(s.bytes + s.seal), record: s.record))
        #expect(d.intact == 11 && d.headerIntact && d.lost.isEmpty && d.exactTimes)
    }

    /// Rot in fragment 3's media and in fragment 7's `moof` header (its size zeroed): the other
    /// eight are found intact, and the lost seconds are exactly 14:02:02–03 and 14:02:06–07.
    @Test func theLostSecondsAreNamedEvenWhenABoxHeaderRotted() throws {
        let s = try sealedSegment()
        var rotten = s.bytes
        rotten[s.starts[3] + 500] ^= 0xFF
        for i in 0..<4 { rotten[s.starts[7] + i] = 0 }
        let d = try #require(FragmentMap.damage(path: write(rotten + s.seal), record: s.record))
        #expect(d.intact == 9 && d.headerIntact && d.exactTimes, "\(d)")
        #expect(d.lost.map { [$0.first, $0.last] } == [[3, 3], [7, 7]], "\(d.lost)")
        #expect(d.lost.map(\.from) == [start + 2, start + 6] && d.lost.map(\.to) == [start + 3, start + 7], "\(d.lost)")
        #expect(d.lostMilliseconds == 2000)
        #expect(d.summary.contains("8 of 10 fragments intact") && d.summary.contains("fragment 3 (2026-11-29T14:02:02"), "\(d.summary)")
        // The verifier says the same.
        let finding = try #require(ChainVerifier.verifyFile(path: write(rotten + s.seal), record: s.record))
        #expect(finding.message.contains("fragment 7 (2026-11-29T14:02:06"), "\(finding)")
    }

    /// Consecutive damaged fragments are one stretch; a damaged header leaves the times spread
    /// evenly over the record, and says so.
    @Test func runsAndALostHeader() throws {
        let s = try sealedSegment()
        var rotten = s.bytes
        for n in 4...6 { rotten[s.starts[n] + 300] ^= 0x55 }
        var d = try #require(FragmentMap.damage(path: write(rotten + s.seal), record: s.record))
        #expect(d.lost.count == 1 && d.lost[0].first == 4 && d.lost[0].last == 6 && d.lost[0].from == start + 3 && d.lost[0].to == start + 6, "\(d.lost)")

        var headless = s.bytes
        for i in 0..<s.starts[1] { headless[i] = 0 }
        headless[s.starts[10] + 300] ^= 1
        d = try #require(FragmentMap.damage(path: write(headless + s.seal), record: s.record))
        #expect(!d.headerIntact && !d.exactTimes && d.intact == 9, "\(d)")
        #expect(d.lost.count == 1 && d.lost[0].first == 10 && d.lost[0].from == start + 9 && d.lost[0].to == start + 10, "\(d.lost)")
        #expect(d.summary.contains("header damaged") && d.summary.contains("times approximate"), "\(d.summary)")
    }

    /// A file cut short loses its tail; garbage, zeros and a file of 8-byte moof boxes stay
    /// bounded and answer (nothing is found intact, nothing traps).
    @Test func cutAndGarbageFiles() throws {
        let s = try sealedSegment()
        var d = try #require(FragmentMap.damage(path: write(Array(s.bytes.prefix(s.starts[8] + 10))), record: s.record))
        #expect(d.lost.map { [$0.first, $0.last] } == [[8, 10]] && d.lost.first?.to == start + 10, "\(d)")
        for junk in [[UInt8](repeating: 0, count: 50_000), (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) },
                     Array(repeating: FragmentedMP4.box("moof", []), count: 100_000).flatMap { $0 }] {
            d = try #require(FragmentMap.damage(path: write(junk), record: s.record))
            #expect(d.intact == 0 && d.lost.count == 1 && d.lost[0].first == 1 && d.lost[0].last == 10)
        }
        #expect(FragmentMap.damage(path: "/nonexistent/x.mp4", record: s.record) == nil)
    }

    /// The commune's check of a clip: declared damaged by the box, a genuine seal and changed
    /// fragments make `damaged` with the lost seconds, and its records count; not declared, the
    /// same file is `failed` (and says which seconds differ).
    @Test func theCommuneFilesADeclaredDamagedClipAsDamaged() throws {
        let s = try sealedSegment(seq: 4)
        let (bytes, starts, key, seal) = (s.bytes, s.starts, s.key, s.seal)
        var rotten = bytes
        rotten[starts[5] + 900] ^= 0x10
        let path = write(rotten + seal)
        let declared = ClipProof.examine(path: path, device: "thaithuy-0042", enrolledKey: key.publicKeyBase64, namedSeq: 4, declaredDamaged: true)
        #expect(declared.status == .damaged && declared.seq == 4 && declared.records.count == 1, "\(declared)")
        #expect(declared.detail.contains("damaged on the box's card: 9 of 10 fragments intact") && declared.detail.contains("fragment 5 (2026-11-29T14:02:04"),
                "\(declared.detail)")
        let plain = ClipProof.examine(path: path, device: "thaithuy-0042", enrolledKey: key.publicKeyBase64, namedSeq: 4)
        #expect(plain.status == .failed && plain.records.isEmpty && plain.detail.contains("fragment 5"), "\(plain)")
        let intact = ClipProof.examine(path: write(bytes + seal), device: "thaithuy-0042", enrolledKey: key.publicKeyBase64, declaredDamaged: true)
        #expect(intact.status == .verified, "a declared file that is intact is simply verified")
    }

    /// A bundle whose manifest says a segment was damaged on the box: its intact fragments are
    /// vouched for and its lost seconds are footage recorded but not here (authentic, not
    /// complete); the same file with the manifest calling it verified is NOT authentic.
    @Test func theVerifierNamesTheSecondsADamagedSegmentLost() throws {
        let s = try sealedSegment()
        let (bytes, starts, key) = (s.bytes, s.starts, s.key)
        let sealed = try SealedRecord.seal(s.record, with: key)
        var rotten = bytes
        rotten[starts[6] + 700] ^= 0x01
        let clip = write(rotten + SealBox(sealed: sealed, key: key.publicKeyBase64).encoded())
        let dir = NSTemporaryDirectory() + "bundle-\(UUID().uuidString)"
        try Bundle.writeProof(into: dir + "/b.proof", publicKey: key.publicKeyBase64, chain: [sealed], countersigns: [], segments: [("a.mp4", clip)])
        for declared in [true, false] {
            var m = EvidenceManifest(device: "thaithuy-0042", camera: "cam1", from: start, to: start + 10, exportedAt: start + 60,
                                     junctionVersion: "t", clockSynchronized: true, parts: [],
                                     segments: [.init(file: "a.mp4", start: start, end: start + 10, bytes: Int64(rotten.count + 100),
                                                      sha256: String(repeating: "0", count: 64), verified: !declared, part: nil)],
                                     gaps: declared ? [.init(from: start, to: start + 10, reason: "damaged on the box")] : [])
            m.proof = "b.proof"
            try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: dir + "/b.manifest.json"))
            try Bundle.signManifest(at: dir + "/b.manifest.json", proof: dir + "/b.proof", signer: .box, key: key)
            let report = BundleVerifier.verify(manifest: dir + "/b.manifest.json")
            if declared {
                #expect(report.authentic && !report.complete && report.problems.isEmpty, "\(report.problems)")
                #expect(report.missingFootage.map(\.from) == [start + 5] && report.missingFootage.map(\.to) == [start + 6], "\(report.missingFootage)")
                #expect(report.missingFootage.first?.reason.contains("fragment 6 of a.mp4") == true)
            } else {
                #expect(!report.authentic && report.problems.contains { $0.contains("fragment 6 (2026-11-29T14:02:05") }, "\(report.problems)")
            }
        }
    }
}
