import Crypto
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
}
