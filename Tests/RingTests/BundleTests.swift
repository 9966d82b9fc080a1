import SystemCrypto
import Evidence
import Foundation
import Logging
import Testing
import Wire
@testable import Ring

/// Evidence bundles and the offline verifier (issue 13): each tamper a court worries about is
/// caught with the right words, and an untouched bundle is "complete except" exactly the gaps
/// the box declared.
@Suite struct BundleTests {
    let device = "thaithuy-0042"
    /// The commune that enrolled the box: its published key is what a stranger checks against.
    let commune = DeviceKey(Curve25519.Signing.PrivateKey())

    /// The verifier as a stranger runs it, with only the commune's published key.
    func verify(_ path: String) -> (BundleReport, Int32) { VerifyCommand.run(path: path, trusting: [commune.publicKey]) }

    /// Writes `manifest` at `path` and signs it with the box's key, as `junction export` does.
    func writeSigned(_ manifest: EvidenceManifest, at path: String, key: DeviceKey) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try e.encode(manifest).write(to: URL(fileURLWithPath: path))
        try Bundle.signManifest(at: path, proof: (path as NSString).deletingLastPathComponent + "/" + manifest.proof!, signer: .box, key: key)
    }

    /// Edits the manifest at `path` as its exporter would have made it, signed again.
    func reexport(_ path: String, key: DeviceKey, _ edit: (inout EvidenceManifest) -> Void) throws {
        var m = try JSONDecoder().decode(EvidenceManifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        edit(&m)
        try writeSigned(m, at: path, key: key)
    }

    /// A box's ring with six sealed segments and a declared gap, its head countersigned, and a
    /// bundle of all of it in a fresh folder. Returns the manifest's path.
    func bundle(countersignedAtEnd: Bool = true) async throws -> (manifest: String, proof: String, key: DeviceKey) {
        let root = makeRoot()
        let ring = try await openRing(root)
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        await ring.startSealing(key: key, device: device)
        var segments: [Segment] = []
        for i in 0..<3 { segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + Double(i * 4)))) }
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 12, end: t0 + 30, reason: "camera down"))
        for i in 0..<3 { segments.append(try await ring.commit(try FakeSegment.write(ring, start: t0 + 30 + Double(i * 4)))) }
        if countersignedAtEnd, let head = try await ring.chainHead() {
            let c = try Heartbeat.Countersign.make(device: device, deviceKey: key.publicKeyBase64, seq: head.seq, hash: head.hash, receivedAt: t0 + 60, key: commune)
            try await ring.keep(c, sent: .init(publicKey: key.publicKeyBase64, seq: head.seq, hash: head.hash), device: device)
        }
        let from = t0, to = t0 + 42
        let records = try await ring.chainRecords(from: from, to: to)
        let out = makeRoot()
        try Bundle.writeProof(into: out + "/b.proof", publicKey: key.publicKeyBase64, chain: records,
                              countersigns: try await ring.countersigns(device: device),
                              binding: try KeyBinding.make(device: device, deviceKey: key.publicKeyBase64, boundAt: t0 - 86_400, key: commune),
                              segments: segments.map { (String($0.path.split(separator: "/").last!), ring.path(of: $0)) })
        var manifest = EvidenceManifest(device: device, camera: "cam1", from: from, to: to, exportedAt: t0 + 100, junctionVersion: "test",
                                        clockSynchronized: true, parts: [],
                                        segments: segments.map { .init(file: $0.path, start: $0.start, end: $0.end, bytes: $0.bytes,
                                                                       sha256: $0.sha256, verified: true, part: 1) },
                                        gaps: EvidenceManifest.holes(from: from, to: to, covered: segments.map { ($0.start, $0.end) }))
        manifest.proof = "b.proof"
        try writeSigned(manifest, at: out + "/b.manifest.json", key: key)
        await ring.close()
        return (out + "/b.manifest.json", out + "/b.proof", key)
    }

    func lines(_ proof: String) throws -> [String] {
        try String(contentsOfFile: proof + "/" + Bundle.chainFile, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String], _ proof: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: proof + "/" + Bundle.chainFile, atomically: true, encoding: .utf8)
    }

    func segmentFiles(_ proof: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: proof + "/segments").sorted().map { proof + "/segments/" + $0 }
    }

    @Test func anUntouchedBundleIsCompleteExceptTheDeclaredGap() async throws {
        let (manifest, _, key) = try await bundle()
        let (report, status) = verify(manifest)
        #expect(status == 0 && report.authentic && report.complete, "\(report.problems)")
        #expect(report.verifiedSegments == 6 && report.undeclared.isEmpty && report.missingFootage.isEmpty)
        let gap = BundleReport.Stretch(from: t0 + 12, to: t0 + 30, reason: "camera down")
        #expect(report.declaredGaps == [gap])
        #expect(report.time.countersignedAt == t0 + 60 && report.time.clockSynchronized && report.deviceKey == key.fingerprint)
        #expect(BundleVerifier.render(report).contains("AUTHENTIC AND COMPLETE EXCEPT THE GAPS THE BOX DECLARED"))
        let folder = (manifest as NSString).deletingLastPathComponent
        #expect(verify(folder).1 == 0, "the folder holding the manifest works too")
        #expect(verify(folder + "/nothing").1 == 4, "nothing there: it cannot be read (4)")
    }

    @Test func oneFlippedByteIsNamedByItsSegmentAndFragment() async throws {
        let (manifest, proof, _) = try await bundle()
        let file = try segmentFiles(proof)[4]
        let h = try #require(FileHandle(forUpdatingAtPath: file))
        let offset = FakeSegment.header(origin: FakeSegment.origin(t0)).count + FakeSegment.fragment(index: 0).count + 300
        try h.seek(toOffset: UInt64(offset))  // inside the second fragment
        try h.write(contentsOf: Data([0x42]))
        try h.close()
        let (report, status) = verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains((file as NSString).lastPathComponent) && $0.contains("fragment 2") },
                "\(report.problems)")
    }

    @Test func aRemovedMiddleSegmentIsCaught() async throws {
        let (manifest, proof, _) = try await bundle()
        var l = try lines(proof)
        l.remove(at: 2)  // record 3, the third segment (the lines start with record 1: nothing is before the range)
        try write(l, proof)
        try FileManager.default.removeItem(atPath: try segmentFiles(proof)[2])
        let (report, status) = verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("records 3–3 are missing") }, "\(report.problems)")
    }

    @Test func swappedSegmentsAreCaught() async throws {
        let (manifest, proof, _) = try await bundle()
        var l = try lines(proof)
        l.swapAt(4, 5)
        try write(l, proof)
        let (report, _) = verify(manifest)
        #expect(!report.authentic && report.problems.contains { $0.contains("moved or repeated") }, "\(report.problems)")
    }

    @Test func aCutTailShowsAgainstTheCommunesCountersignature() async throws {
        let (manifest, proof, _) = try await bundle()
        try write(Array(try lines(proof).dropLast(2)), proof)
        for f in try segmentFiles(proof).suffix(2) { try FileManager.default.removeItem(atPath: f) }
        let (report, status) = verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("records 6–7 were cut") }, "\(report.problems)")
    }

    @Test func aShiftedStartTimeBreaksTheSeal() async throws {
        let (manifest, proof, _) = try await bundle()
        var l = try lines(proof)
        let sealed = try JSONDecoder().decode(SealedRecord.self, from: Data(l[1].utf8))
        let shifted = SealedRecord(body: sealed.body.replacingOccurrences(of: "\"start_ms\":\(t0.milliseconds + 4000)",
                                                                          with: "\"start_ms\":\(t0.milliseconds + 3000)"), signature: sealed.signature)
        #expect(shifted.body != sealed.body)
        l[1] = String(decoding: try JSONEncoder().encode(shifted), as: UTF8.self)
        try write(l, proof)
        let (report, _) = verify(manifest)
        #expect(!report.authentic && report.problems.contains { $0.contains("record 2") && $0.contains("not this box's key") }, "\(report.problems)")
    }

    @Test func anotherDevicesKeyOrSealVouchesForNothing() async throws {
        let (manifest, proof, _) = try await bundle()
        let other = DeviceKey(Curve25519.Signing.PrivateKey())
        try (other.publicKeyBase64 + "\n").write(toFile: proof + "/" + Bundle.keyFile, atomically: true, encoding: .utf8)
        let (replaced, _) = verify(manifest)
        #expect(!replaced.authentic && replaced.problems.filter { $0.contains("not this box's key") }.count == 7, "\(replaced.problems)")

        let (manifest2, proof2, _) = try await bundle()
        let neighbour = ChainRecord(device: "thaithuy-0043", seq: 2, prev: ChainRecord.genesis, kind: .gap, camera: "cam1",
                                    start: t0 + 4, end: t0 + 8, clockSynchronized: true, reason: "camera down")
        var l = try lines(proof2)
        l[1] = String(decoding: try JSONEncoder().encode(try SealedRecord.seal(neighbour, with: other)), as: UTF8.self)
        try write(l, proof2)
        let (replayed, _) = verify(manifest2)
        #expect(!replayed.authentic && replayed.problems.contains { $0.contains("belongs to box \"thaithuy-0043\"") }, "\(replayed.problems)")
    }

    @Test func anEditedManifestIsCaught() async throws {
        let (manifest, _, _) = try await bundle()
        var m = try JSONDecoder().decode(EvidenceManifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
        m.segments[1].sha256 = String(repeating: "0", count: 64)
        try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: manifest))
        let (report, status) = verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("the manifest was edited") }, "\(report.problems)")
    }

    @Test func footageTheBundleLacksIsSaidAndNotCalledComplete() async throws {
        let (manifest, proof, key) = try await bundle(countersignedAtEnd: false)
        try FileManager.default.removeItem(atPath: try segmentFiles(proof)[0])
        try reexport(manifest, key: key) { m in
            m.segments.removeFirst()
            m.to = t0 + 50  // past what was recorded: 42–50 is accounted for by no record
            m.gaps = [.init(from: t0, to: t0 + 4, reason: "lost"), .init(from: t0 + 12, to: t0 + 30, reason: "camera down"), .init(from: t0 + 42, to: t0 + 50, reason: "not recorded")]
        }
        let (report, status) = verify(manifest)
        #expect(status == 2 && report.authentic && !report.complete, "\(report.problems)")
        let hole = BundleReport.Stretch(from: t0 + 42, to: t0 + 50, reason: "no record covers it")
        #expect(report.missingFootage.count == 1)
        #expect(report.undeclared == [hole])
        #expect(report.time.countersignedAt == nil && BundleVerifier.render(report).contains("rests on the box's clock alone"))
    }
}
