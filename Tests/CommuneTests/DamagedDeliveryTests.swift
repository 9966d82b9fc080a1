import SystemCrypto
import Evidence
import Foundation
import Hostile
import Logging
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Uplink

/// Issue 22, end to end over HTTP: a flagged segment its card damaged goes from the box to the
/// commune as what it is, and the commune files it `damaged`, naming the second lost, with its
/// record in the commune's chain; the box keeps the file in quarantine once it is delivered.
@Suite struct DamagedDeliveryTests {
    @Test func aCardDamagedSegmentArrivesDamagedWithTheLostSecondNamed() async throws {
        let server = try await RunningServer.start(communeKey: DeviceKey(Curve25519.Signing.PrivateKey()))
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let (ring, service) = try await CountersignTests().sealingBox(server, key: key)
        let t0 = CountersignTests().t0
        var known = HeartbeatService.Known()
        #expect(await service.beat(&known) == .answered(newRequests: 0), "the key is bound first")
        // A sealed segment of ten one-second fragments, as the recorder writes it.
        let o = SegmentOrigin(camera: "cam1", start: t0, monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
        let path = try ring.prepareSegmentPath(for: o)
        let (bytes, starts) = FragmentedMP4.segment(fragments: 10, payload: 4000, comment: o.comment)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        _ = try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha256Hex(bytes), durationSeconds: 10))
        let segment = try #require(try await ring.segments().first)
        _ = try await ring.flag(.init(camera: "cam1", from: t0, to: t0 + 10, reason: "robbery"), now: t0 + 60)
        // The card flips a byte in fragment 4's media after it was sealed and indexed.
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: ring.path(of: segment)))
        try h.seek(toOffset: UInt64(starts[4] + 2000))
        let old = try #require(try h.read(upToCount: 1))
        try h.seek(toOffset: UInt64(starts[4] + 2000))
        try h.write(contentsOf: Data([old[0] ^ 0x40]))
        try h.close()

        let queue = UploadQueue(ring: ring, client: TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/",
                                                              token: service.configuration.token), device: "thaithuy-0042", checksum: .sha256,
                                logger: Logger(label: "t"))
        let first = try await queue.drain(sleep: { _ in })
        #expect(first.uploaded.isEmpty && first.failed.count == 1, "the commune refuses it: not the bytes recorded")
        #expect(try await server.catalog.clips().isEmpty)
        let second = try await queue.drain(sleep: { _ in })
        #expect(second.uploaded == [segment.id], "sent again, as it is, declared damaged")
        let clip = try #require(try await server.catalog.clips().first)
        #expect(clip.proof == "damaged" && clip.chainSeq != nil, "\(clip.proof): \(clip.proofDetail ?? "")")
        #expect(clip.proofDetail?.contains("9 of 10 fragments intact as sealed") == true
                && clip.proofDetail?.contains("fragment 4 (2026-11-29T14:00:03") == true, "\(clip.proofDetail ?? "")")
        let records = try await server.catalog.chainRecords(device: "thaithuy-0042", from: t0, to: t0 + 10)
        #expect(records.compactMap(\.record?.file).contains((segment.path as NSString).lastPathComponent), "its genuine record joins the commune's chain")
        #expect(try await ring.quarantined().count == 1, "the box keeps the damaged file, untouched, in quarantine")
        #expect(try await ring.uploadQueue().isEmpty)
        await ring.close()
        await server.stop()
    }
}
