import SystemCrypto
@testable import Evidence
import Foundation
import Hostile
import PropertyBased
import Testing
import Wire
@testable import Ring

/// Issue 22: bundles a hostile box or a hostile hand made. Every number of a record is bounded
/// where it is parsed, every file's size and kind is checked before it is read, and the chain is
/// read a line at a time: nothing here can trap the verifier, hang it or make it use the file's
/// size in memory.
@Suite struct HostileBundleTests {
    let bundles = BundleTests()

    /// A record of `seq` with the given times, sealed by `key` (the JSON a box could sign).
    static func sealed(seq: Int64, start: Int64, end: Int64, mono: Int64? = 0, boot: String? = "b", key: DeviceKey, device: String = "thaithuy-0042",
                       prev: String = ChainRecord.genesis) -> String {
        var body: [String: Any] = ["v": 1, "device": device, "seq": seq, "prev": prev, "kind": "gap", "camera": "cam1",
                                   "start_ms": start, "end_ms": end, "clock_synced": true, "reason": "x"]
        if let mono { body["mono_start_ns"] = mono }
        if let boot { body["boot_id"] = boot }
        let text = String(decoding: try! JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        let signature = try! key.sign(Data("junction-seal/1\n\(ChainRecord.hash(text))".utf8)).base64EncodedString()
        return String(decoding: try! JSONEncoder().encode(SealedRecord(body: text, signature: signature)), as: UTF8.self)
    }

    @Test func recordsAtInt64sEndsAreMalformedNotATrap() async throws {
        let (manifest, proof, key) = try await bundles.bundle()
        var l = try bundles.lines(proof)
        // The cases: start −2^63, end 2^63−1, and two records of one boot near −2^63.
        l.insert(Self.sealed(seq: 8, start: .min, end: .max, key: key), at: l.count)
        l.insert(Self.sealed(seq: 9, start: .min + 1, end: .min + 2, key: key), at: l.count)
        l.insert(Self.sealed(seq: 10, start: .min, end: .min + 1, key: key), at: l.count)
        l.insert(Self.sealed(seq: .max, start: 0, end: 1, key: key), at: l.count)
        try bundles.write(l, proof)
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.filter { $0.contains("cannot be read") }.count == 4, "\(report.problems)")
        #expect(throws: ChainError.self) { try ChainRecord.parse(Self.body(of: Self.sealed(seq: 1, start: 0, end: 1, mono: .max, key: key))) }
        #expect(throws: ChainError.self) { try ChainRecord.parse(Self.body(of: Self.sealed(seq: 1 << 53 + 1, start: 0, end: 1, key: key))) }
        #expect(try ChainRecord.parse(Self.body(of: Self.sealed(seq: 1 << 53, start: Timestamp.earliest.milliseconds, end: Timestamp.latest.milliseconds,
                                                                 mono: 1 << 62, key: key))).seq == 1 << 53, "at the bounds: read")
    }

    static func body(of line: String) -> String { try! JSONDecoder().decode(SealedRecord.self, from: Data(line.utf8)).body }

    /// Property: a chain of records whose numbers are any of `HostileGen.int64` (sealed with the
    /// box's key, so only the verifier's bounds stand between them and its arithmetic) verifies
    /// without a trap, and every record it reads lies inside the bounds.
    @Test func anyNumbersInSealedRecordsLeaveTheVerifierStanding() async throws {
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        await propertyCheck(count: 300, input: HostileGen.int64.array(of: 8)) { n in
            let lines = [Self.sealed(seq: n[0], start: n[1], end: n[2], mono: n[3], key: key),
                         Self.sealed(seq: n[4], start: n[5], end: n[6], mono: n[7], key: key),
                         Self.sealed(seq: n[0].adding(saturating: 1), start: n[2], end: n[6], mono: n[3], key: key)]
            let chain = lines.map { try! JSONDecoder().decode(SealedRecord.self, from: Data($0.utf8)) }
            let (records, _) = ChainVerifier.verify(chain, key: key.publicKey, device: "thaithuy-0042")
            for r in records {
                #expect(Bounds.sequence.contains(r.seq) && Timestamp.validRange.contains(r.start) && Timestamp.validRange.contains(r.end) && r.end >= r.start)
            }
            // And through a whole bundle with a manifest at the ends of time.
            let dir = NSTemporaryDirectory() + "hostile-bundle-" + UUID().uuidString
            try? FileManager.default.createDirectory(atPath: dir + "/p/segments", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try? (key.publicKeyBase64 + "\n").write(toFile: dir + "/p/" + Bundle.keyFile, atomically: true, encoding: .utf8)
            try? (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/p/" + Bundle.chainFile, atomically: true, encoding: .utf8)
            try? "".write(toFile: dir + "/p/" + Bundle.countersignFile, atomically: true, encoding: .utf8)
            var m = EvidenceManifest(device: "thaithuy-0042", camera: "cam1", from: .earliest, to: .latest, exportedAt: .latest, junctionVersion: "t",
                                     clockSynchronized: true, parts: [], segments: [], gaps: [])
            m.proof = "p"
            try? JSONEncoder().encode(m).write(to: URL(fileURLWithPath: dir + "/m.manifest.json"))
            let report = BundleVerifier.verify(manifest: dir + "/m.manifest.json")
            _ = BundleVerifier.render(report)
        }
    }

    /// A chain.jsonl one byte over the bound (sparse) is refused by its size before a byte is read.
    @Test func aHugeChainFileIsRefusedBeforeItIsRead() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let fd = open(proof + "/" + Bundle.chainFile, O_WRONLY)
        #expect(ftruncate(fd, off_t(Bundle.maxChainBytes + 1)) == 0)
        close(fd)
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("over the bound of \(Bundle.maxChainBytes)") }, "\(report.problems)")
    }

    /// A FIFO where a segment should be is named, not opened for reading (that hung the verifier).
    @Test func aFIFOInTheBundleDoesNotHangTheVerifier() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let file = try bundles.segmentFiles(proof)[1]
        try FileManager.default.removeItem(atPath: file)
        #expect(mkfifo(file, 0o644) == 0)
        let fifo = proof + "/" + Bundle.countersignFile
        try FileManager.default.removeItem(atPath: fifo)
        #expect(mkfifo(fifo, 0o644) == 0)
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("not a plain file") && $0.contains((file as NSString).lastPathComponent) }, "\(report.problems)")
        #expect(report.problems.contains { $0.contains(Bundle.countersignFile) && $0.contains("not a plain file") }, "\(report.problems)")
    }

    /// The joined MP4 the manifest names must be there (a missing one verified before).
    @Test func aMissingJoinedMP4IsNamed() async throws {
        let (manifest, _, _) = try await bundles.bundle()
        var m = try JSONDecoder().decode(EvidenceManifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
        m.parts = [.init(file: "joined.mp4", bytes: 10, sha256: String(repeating: "a", count: 64), from: m.from, to: m.to, segments: 6)]
        try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: manifest))
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("joined.mp4") && $0.contains("missing") }, "\(report.problems)")
    }

    /// 200 000 garbage lines print a screen of problems, the rest counted; a line over the bound
    /// is named without being held; a Windows tool's CRLF endings still verify.
    @Test func garbageIsCountedAndCRLFIsRead() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let good = try bundles.lines(proof)
        try bundles.write(good.map { $0 + "\r" }, proof)
        #expect(bundles.verify(manifest).1 == 0, "CRLF line endings are line endings")
        let long = String(repeating: "x", count: BundleVerifier.maxLineBytes + 10)
        try bundles.write(good + [long] + [String](repeating: "{garbage", count: 200_000), proof)
        let (report, _) = bundles.verify(manifest)
        #expect(report.problems.count == BundleVerifier.maxProblems + 1
                && report.problems.last == "… and \(200_001 - BundleVerifier.maxProblems) more problems", "\(report.problems.suffix(2))")
        #expect(report.problems.contains { $0.contains("line \(good.count + 1) is over") }, "\(report.problems.prefix(3))")
    }

    /// A sealed clip of millions of 8-byte `moof` boxes: the hasher keeps at most its bound of
    /// pieces (it kept one per box: 22 times the file in memory), and the clip fails its check.
    @Test func aClipOfTinyFragmentsKeepsBoundedPieces() throws {
        var h = PieceHasher()
        let moofs = [UInt8](repeating: 0, count: 8 * 1_000_000)
        var boxes = moofs
        for i in stride(from: 0, to: boxes.count, by: 8) { boxes.replaceSubrange(i..<i + 8, with: [0, 0, 0, 8, 0x6D, 0x6F, 0x6F, 0x66]) }
        h.update(boxes)
        let (_, pieces) = h.finish()
        #expect(pieces.count == ChainRecord.maxPieces && h.overflowed, "\(pieces.count) pieces")
    }

    /// A segment record at every bound at once (8192 pieces, the longest activity and reason)
    /// fits the body's bound and parses; one piece more is refused by the piece bound.
    @Test func aRecordAtEveryBoundAtOnceParses() throws {
        let hash = String(repeating: "a", count: 64)
        func body(pieces: Int) -> String {
            let r = ChainRecord(device: String(repeating: "d", count: 64), seq: Int64(1) << 53, prev: hash, kind: .segment,
                                camera: String(repeating: "c", count: 64), start: Timestamp(milliseconds: 0), end: Timestamp(milliseconds: 1),
                                clockSynchronized: true, monotonicStartNs: 1 << 62, bootID: String(repeating: "b", count: 64),
                                file: String(repeating: "f", count: 64), mediaBytes: 1 << 50, mediaSHA256: hash,
                                pieces: Array(repeating: hash, count: pieces), codec: String(repeating: "h", count: 64),
                                reason: String(repeating: "r", count: ChainRecord.maxReasonCharacters),
                                activity: String(repeating: "0", count: ChainRecord.maxActivityCharacters))
            return r.body()
        }
        let full = body(pieces: ChainRecord.maxPieces)
        #expect(full.utf8.count <= ChainRecord.maxBodyBytes, "\(full.utf8.count) bytes")
        #expect(throws: Never.self) { try ChainRecord.parse(full) }
        #expect(throws: ChainError.self) { try ChainRecord.parse(body(pieces: ChainRecord.maxPieces + 1)) }
    }
}
