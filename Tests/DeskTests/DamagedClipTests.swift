import SystemCrypto
import Foundation
import Hostile
import Testing
import Wire
@testable import Commune
@testable import Desk
@testable import Evidence

/// Issue 22: a clip the box's card damaged arrives as what it is, and the desk says which
/// seconds were lost, in the commune's time zone and the officer's language.
@Suite struct DamagedClipTests {
    @Test func theDeskSaysWhichSecondsADamagedClipLost() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("dangg", password: "mat-khau-dai-9")
        _ = try await server.catalog.addDevice(id: "box-a")
        let t0 = Timestamp(rfc3339: "2026-11-29T07:02:00Z")!
        let (bytes, starts) = FragmentedMP4.segment(fragments: 10)
        var h = PieceHasher()
        h.update(bytes)
        let (sha, pieces) = h.finish()
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let record = ChainRecord(device: "box-a", seq: 1, prev: ChainRecord.genesis, kind: .segment, camera: "cam1", start: t0, end: t0 + 10,
                                 clockSynchronized: true, file: "a.mp4", mediaBytes: Int64(bytes.count), mediaSHA256: sha, pieces: pieces, codec: "h264")
        let sealed = try SealedRecord.seal(record, with: key)
        var rotten = bytes
        rotten[starts[3] + 600] ^= 0x08
        let file = NSTemporaryDirectory() + "clip-" + UUID().uuidString + ".mp4"
        let contents = rotten + SealBox(sealed: sealed, key: key.publicKeyBase64).encoded()
        _ = FileManager.default.createFile(atPath: file, contents: Data(contents))
        try await server.catalog.setKey(device: "box-a", publicKey: key.publicKeyBase64)
        let proof = ClipProof.examine(path: file, device: "box-a", enrolledKey: key.publicKeyBase64, namedSeq: 1, declaredDamaged: true)
        #expect(proof.status == .damaged, "\(proof)")
        try await server.catalog.createUpload(.init(id: "u1", device: "box-a", length: Int64(contents.count), offset: Int64(contents.count),
                                                    metadata: "", expires: t0 + 86400))
        try await server.catalog.fileClip(.init(path: file, device: "box-a", camera: "cam1", start: t0, end: t0 + 10, bytes: Int64(contents.count),
                                                sha256: SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined(), request: nil,
                                                reason: nil, receivedAt: t0, proof: proof.status.rawValue, proofDetail: proof.detail, chainSeq: 1),
                                          uploadID: "u1", records: proof.records)
        let browser = Browser(server.url)
        _ = try await browser.signIn("dangg", "mat-khau-dai-9")
        let page = try await browser.request(.GET, "/boxes/box-a/play?from=29/11/2026+14:00&to=29/11/2026+14:10")
        #expect(page.status == 200)
        let note = try #require(page.body.components(separatedBy: "class=\"damaged\"").dropFirst().first, "\(page.body)")
        #expect(note.contains(HTML.escape(Strings.vi[.damagedOnCard]!)) && note.contains("14:02:02") && note.contains("14:02:03"), "\(note.prefix(300))")
        #expect(page.body.components(separatedBy: "class=\"damaged\"").count == 2, "one damaged clip, one note")
    }
}
