import SystemCrypto
import Foundation
import Testing
import Wire
@testable import Evidence

/// A top-level MP4 box: size, type, payload.
func box(_ type: String, _ payload: [UInt8]) -> [UInt8] {
    let size = UInt32(8 + payload.count)
    return [UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)] + Array(type.utf8) + payload
}

/// The shape of a segment: header, then `fragments` moof+mdat pairs.
func fakeSegment(fragments: Int, seed: UInt8 = 1) -> (bytes: [UInt8], pieces: [[UInt8]]) {
    var pieces = [box("ftyp", Array("isom".utf8)) + box("moov", [UInt8](repeating: seed, count: 300))]
    for n in 0..<fragments {
        pieces.append(box("moof", [UInt8](repeating: UInt8(n), count: 40)) + box("mdat", (0..<(1000 + n * 7)).map { UInt8(($0 + n) % 251) }))
    }
    return (pieces.flatMap { $0 }, pieces)
}

func tempPath(_ name: String) -> String { NSTemporaryDirectory() + "evidence-\(UUID().uuidString)-\(name)" }

/// A box's chain as the ring makes it: records sealed one by one, each naming the one before.
struct ChainMaker {
    var key = DeviceKey(Curve25519.Signing.PrivateKey())
    var device = "thaithuy-0042"
    var sealed: [SealedRecord] = []
    var t = Timestamp(rfc3339: "2026-11-29T07:00:00Z")!

    mutating func segment(seconds: Double = 10, boot: String = "boot-1") throws -> ChainRecord {
        let (bytes, _) = fakeSegment(fragments: 3, seed: UInt8(sealed.count % 200))
        var h = PieceHasher()
        h.update(bytes)
        let (sha, pieces) = h.finish()
        let r = ChainRecord(device: device, seq: Int64(sealed.count + 1), prev: sealed.last?.hash ?? ChainRecord.genesis, kind: .segment,
                            camera: "cam1", start: t, end: t + seconds, clockSynchronized: true, monotonicStartNs: 1, bootID: boot,
                            file: "\(t.compact).mp4", mediaBytes: Int64(bytes.count), mediaSHA256: sha, pieces: pieces, codec: "h264")
        sealed.append(try SealedRecord.seal(r, with: key))
        t = t + seconds
        return r
    }

    mutating func gap(seconds: Double, reason: String) throws {
        let r = ChainRecord(device: device, seq: Int64(sealed.count + 1), prev: sealed.last?.hash ?? ChainRecord.genesis, kind: .gap,
                            camera: "cam1", start: t, end: t + seconds, clockSynchronized: true, reason: reason)
        sealed.append(try SealedRecord.seal(r, with: key))
        t = t + seconds
    }

    func verify(_ records: [SealedRecord]? = nil, key: Curve25519.Signing.PublicKey? = nil) -> [ChainFinding] {
        ChainVerifier.verify(records ?? sealed, key: key ?? self.key.publicKey, device: device).findings
    }
}

@Suite struct EvidenceTests {
    @Test func piecesAreTheHeaderThenEachFragmentHoweverTheBytesArrive() {
        let (bytes, pieces) = fakeSegment(fragments: 4)
        let expected = pieces.map { hex(SHA256.hash(data: $0)) }
        for chunk in [1, 3, 7, 24, 1000, bytes.count] {
            var h = PieceHasher()
            var i = 0
            while i < bytes.count { h.update(Array(bytes[i..<min(bytes.count, i + chunk)])); i += chunk }
            let (sha, got) = h.finish()
            #expect(got == expected, "chunks of \(chunk)")
            #expect(sha == hex(SHA256.hash(data: bytes)) && h.bytes == Int64(bytes.count))
        }
        // A 64-bit size and a box to the end of the file are boxes too; a nonsense size keeps the rest in one piece.
        var large = PieceHasher()
        let big: [UInt8] = [0, 0, 0, 1] + Array("mdat".utf8) + [0, 0, 0, 0, 0, 0, 0, 20] + [9, 9, 9, 9]
        large.update(box("moov", [1]) + big + box("moof", [2]) + [0, 0, 0, 0] + Array("mdat".utf8) + [5, 5])
        #expect(large.finish().pieces.count == 2)
        var bad = PieceHasher()
        bad.update(box("moov", [1]) + [0, 0, 0, 3] + Array("moof".utf8) + box("moof", [1]))
        #expect(bad.finish().pieces.count == 1)
    }

    @Test func anUntouchedChainVerifies() throws {
        var chain = ChainMaker()
        for _ in 0..<3 { _ = try chain.segment() }
        try chain.gap(seconds: 30, reason: "camera down")
        for _ in 0..<2 { _ = try chain.segment() }
        #expect(chain.verify().isEmpty)
        #expect(ChainVerifier.verify(Array(chain.sealed[2...]), key: chain.key.publicKey, device: chain.device,
                                     after: (2, chain.sealed[1].hash)).findings.isEmpty, "any stretch verifies from the record before it")
    }

    /// Each tamper a court would worry about is caught, with the right words.
    @Test func tamperingIsCaughtAndNamed() throws {
        var chain = ChainMaker()
        for _ in 0..<5 { _ = try chain.segment() }
        let s = chain.sealed

        var edited = s
        edited[2].body = edited[2].body.replacingOccurrences(of: "\"start_ms\":17", with: "\"start_ms\":16")  // a start time shifted
        let shifted = chain.verify(edited)
        #expect(shifted.contains { $0.kind == .badSeal && $0.seq != nil } && shifted.contains { $0.kind == .brokenLink && $0.seq == 4 }, "\(shifted)")

        let removed = chain.verify([s[0], s[1], s[3], s[4]])
        #expect(removed.map(\.kind) == [.missing] && removed[0].message.contains("records 3–3 are missing"), "\(removed)")

        let swapped = chain.verify([s[0], s[2], s[1], s[3], s[4]])
        #expect(swapped.contains { $0.kind == .missing } && swapped.contains { $0.kind == .reordered }, "\(swapped)")

        let other = DeviceKey(Curve25519.Signing.PrivateKey())
        let foreign = chain.verify(key: other.publicKey)
        #expect(foreign.count == 5 && foreign.allSatisfy { $0.kind == .badSeal }, "a different key vouches for nothing")

        var neighbour = ChainMaker(device: "thaithuy-0043")
        for _ in 0..<3 { _ = try neighbour.segment() }
        let replayed = chain.verify([s[0], s[1], neighbour.sealed[2], s[3]])
        #expect(replayed.contains { $0.kind == .wrongDevice } && replayed.contains { $0.kind == .badSeal }, "\(replayed)")

        var garbage = s
        garbage[1].body = "{\"v\":1"
        #expect(chain.verify(garbage).contains { $0.kind == .malformed })
    }

    @Test func timeRunningBackwardsInOneBootIsReported() throws {
        var chain = ChainMaker()
        _ = try chain.segment()
        chain.t = chain.t + -60  // a second record sealed by the box itself, but a minute earlier
        _ = try chain.segment()
        #expect(chain.verify().map(\.kind) == [.timeBackwards])
        var rebooted = ChainMaker()
        _ = try rebooted.segment(boot: "boot-1")
        rebooted.t = rebooted.t + -60
        _ = try rebooted.segment(boot: "boot-2")
        #expect(rebooted.verify().isEmpty, "across a reboot the wall clock may have been wrong before; the clock state says so")
    }

    @Test func aSegmentFileNamesTheFragmentThatChanged() throws {
        let chain = ChainMaker()
        let (bytes, pieces) = fakeSegment(fragments: 4)
        var h = PieceHasher()
        h.update(bytes)
        let (sha, hashes) = h.finish()
        let record = ChainRecord(device: chain.device, seq: 1, prev: ChainRecord.genesis, kind: .segment, camera: "cam1", start: chain.t,
                                 end: chain.t + 4, clockSynchronized: true, file: "a.mp4", mediaBytes: Int64(bytes.count),
                                 mediaSHA256: sha, pieces: hashes)
        let sealed = try SealedRecord.seal(record, with: chain.key)
        let path = tempPath("a.mp4")
        let seal = SealBox(sealed: sealed, key: chain.key.publicKeyBase64)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes + seal.encoded()))
        #expect(ChainVerifier.verifyFile(path: path, record: record) == nil)
        let found = try #require(SealBox.find(path: path))
        #expect(found.offset == Int64(bytes.count) && found.seal == seal && found.seal.sealed.isSealed(by: chain.key.publicKey))

        var flipped = bytes
        let inThird = pieces[0].count + pieces[1].count + 30  // in the second fragment
        flipped[inThird] ^= 0x01
        _ = FileManager.default.createFile(atPath: path, contents: Data(flipped + seal.encoded()))
        let changed = try #require(ChainVerifier.verifyFile(path: path, record: record))
        #expect(changed.kind == .changedBytes && changed.message.contains("fragment 2") && !changed.message.contains("fragment 1"), "\(changed)")

        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes.prefix(500)))
        #expect(ChainVerifier.verifyFile(path: path, record: record)?.message.contains("cut") == true)
        #expect(SealBox.find(path: path) == nil, "a file cut before its seal has none")
        #expect(ChainVerifier.verifyFile(path: path + "-gone", record: record)?.kind == .missingFile)
    }

    /// The verifier tells which release made the verified segments, one line per run of them.
    @Test func theReportSaysWhichReleaseMadeTheSegments() throws {
        var report = try JSONDecoder().decode(BundleReport.self, from: Data(#"{"authentic":true,"complete":true,"device":"box","from":"2026-12-01T00:00:00Z","to":"2026-12-01T01:00:00Z","verified_segments":4,"declared_gaps":[],"missing_footage":[],"undeclared":[],"time":{"clock_synchronized":true},"problems":[]}"#.utf8))
        #expect(report.software.isEmpty, "a report from before the field reads")
        for (software, seq) in [("junction 1.0.0 slot a", 1), ("junction 1.0.0 slot a", 2), ("junction 1.2.0 slot b", 4), (nil, 5)] as [(String?, Int64)] {
            report.made(by: software, record: seq)
        }
        #expect(report.software.map(\.software) == ["junction 1.0.0 slot a", "junction 1.2.0 slot b", "not recorded (a box from before updates)"])
        #expect(report.software.map(\.segments) == [2, 1, 1] && report.software[0].lastRecord == 2)
        let text = BundleVerifier.render(report)
        #expect(text.contains("made by junction 1.0.0 slot a: records 1–2 (2 segments)") && text.contains("made by junction 1.2.0 slot b: record 4 (1 segment)"), "\(text)")
    }

    @Test func aSealBoxIsReadOnlyWhenItIsOne() {
        #expect(SealBox.decode([]) == nil)
        #expect(SealBox.decode(box("uuid", Array("Junction-seal-v1".utf8) + Array("{not json".utf8))) == nil)
        #expect(SealBox.decode(box("uuid", Array("Another-vendor!!".utf8) + Array("{}".utf8))) == nil)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {  // random bytes after a seal box's header never crash the reader
            let junk = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = SealBox.decode(box("uuid", SealBox.uuid + junk))
            _ = try? ChainRecord.parse(String(decoding: junk, as: UTF8.self))
            var h = PieceHasher()
            h.update(junk)
            _ = h.finish()
        }
    }

    @Test func theDeviceKeyIsMadeOnceKeptPrivateAndNeverSilentlyReplaced() throws {
        let path = tempPath("keys") + "/device.ed25519"
        let (made, created) = try DeviceKey.loadOrCreate(path: path)
        #expect(created)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(stat((path as NSString).deletingLastPathComponent, &st) == 0 && st.st_mode & 0o777 == 0o700)
        let (again, createdAgain) = try DeviceKey.loadOrCreate(path: path)
        #expect(!createdAgain && again.publicKeyBase64 == made.publicKeyBase64)
        #expect(made.fingerprint.count == 16 && DeviceKey.publicKey(base64: made.publicKeyBase64)?.rawRepresentation == made.publicKey.rawRepresentation)
        _ = FileManager.default.createFile(atPath: path, contents: Data("junction-device-key/1 broken\n".utf8))
        #expect(throws: ChainError.self) { try DeviceKey.loadOrCreate(path: path) }
        #expect(String(data: FileManager.default.contents(atPath: path)!, encoding: .utf8)!.contains("broken"), "left as it was")
        #expect(DeviceKey.publicKey(base64: "AAAA") == nil && DeviceKey.publicKey(base64: String(repeating: "A", count: 500)) == nil)
    }
}
