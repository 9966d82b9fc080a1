import Crypto
import Evidence
import Foundation
import Logging
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Uplink

/// The commune pins each box's chain in time (issue 13): the first heartbeat that carries a key
/// binds it, each head is countersigned and the box keeps the countersignature; a different key
/// is refused until an operator re-enrols the box.
@Suite struct CountersignTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!

    func sealingBox(_ server: RunningServer, key: DeviceKey) async throws -> (Ring, HeartbeatService) {
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        await ring.startSealing(key: key, device: "thaithuy-0042")
        var configuration = HeartbeatService.Configuration(url: server.url + Heartbeat.path, token: Secret(token), device: "thaithuy-0042", camera: "cam1")
        configuration.publicKey = key.publicKeyBase64
        let service = HeartbeatService(configuration: configuration, transport: HTTPTransport(), ring: ring, version: "test",
                                       logger: Logger(label: "t")) { ("recording", nil, true, true) }
        return (ring, service)
    }

    func segment(_ ring: Ring, at seconds: Double) async throws {
        let o = SegmentOrigin(camera: "cam1", start: t0 + seconds, monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
        let path = try ring.prepareSegmentPath(for: o)
        let bytes = (0..<5_000).map { _ in UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        _ = try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha256Hex(bytes), durationSeconds: 10))
    }

    @Test func theHeadIsCountersignedAndTheFirstKeyIsBound() async throws {
        let communeKey = DeviceKey(Curve25519.Signing.PrivateKey())
        let server = try await RunningServer.start(communeKey: communeKey)
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let (ring, service) = try await sealingBox(server, key: key)
        try await segment(ring, at: 0)
        try await segment(ring, at: 10)
        var known: [FootageRequest] = []
        #expect(await service.beat(&known) == .answered(newRequests: 0))
        #expect(try await server.catalog.publicKey(device: "thaithuy-0042") == key.publicKeyBase64, "bound at the first heartbeat")
        let head = try #require(try await ring.chainHead())
        let kept = try await ring.countersigns(device: "thaithuy-0042")
        #expect(kept.count == 1 && kept[0].seq == head.seq && kept[0].hash == head.hash)
        #expect(kept[0].isValid(trusting: communeKey.publicKey), "the commune's signature, under the key a court is given")
        #expect(!kept[0].isValid(trusting: key.publicKey), "and under no other")
        var shifted = kept[0]
        shifted.receivedAt = shifted.receivedAt + 3600
        #expect(!shifted.isValid(trusting: communeKey.publicKey), "its time cannot be moved")
        #expect(try await server.catalog.countersigns(device: "thaithuy-0042", communeKey: communeKey.publicKeyBase64) == kept)
        await ring.close()

        // The same device id with another key (a copied token, a swapped card): refused, and
        // nothing countersigned, until an operator re-enrols it.
        let intruderKey = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring2 = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                        logger: Logger(label: "t"))
        await ring2.startSealing(key: intruderKey, device: "thaithuy-0042")
        try await segment(ring2, at: 100)
        var configuration = service.configuration
        configuration.publicKey = intruderKey.publicKeyBase64
        let intruder = HeartbeatService(configuration: configuration, transport: HTTPTransport(), ring: ring2, version: "test",
                                        logger: Logger(label: "t")) { ("recording", nil, true, true) }
        #expect(await intruder.beat(&known) == .answered(newRequests: 0), "the heartbeat itself still goes through")
        #expect(try await ring2.countersigns(device: "thaithuy-0042").isEmpty)
        #expect(try await server.catalog.publicKey(device: "thaithuy-0042") == key.publicKeyBase64, "the bound key stays")
        try await server.catalog.setKey(device: "thaithuy-0042", publicKey: nil)  // commune devices rekey
        #expect(await intruder.beat(&known) == .answered(newRequests: 0))
        #expect(try await server.catalog.publicKey(device: "thaithuy-0042") == intruderKey.publicKeyBase64)
        #expect(try await ring2.countersigns(device: "thaithuy-0042").count == 1)
        await ring2.close()
        await server.stop()
    }

    @Test func aCountersignatureNotOfTheHeadSentIsNotKept() async throws {
        let communeKey = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        let sent = Heartbeat.ChainHead(publicKey: "k", seq: 7, hash: String(repeating: "a", count: 64))
        let good = try Heartbeat.Countersign.make(device: "box", seq: 7, hash: sent.hash!, receivedAt: t0, key: communeKey)
        var other = good
        other.seq = 8
        await #expect(throws: RingError.self) { try await ring.keep(other, sent: sent, device: "box") }
        var forged = good
        forged.signature = Data(repeating: 1, count: 64).base64EncodedString()
        await #expect(throws: RingError.self) { try await ring.keep(forged, sent: sent, device: "box") }
        await #expect(throws: RingError.self) { try await ring.keep(good, sent: sent, device: "another-box") }
        try await ring.keep(good, sent: sent, device: "box")
        // 60 hours of heartbeats every 2 min: the last day's all kept, one an hour before.
        for i in 0..<1800 {
            let at = t0 + Double(i * 120)
            try await ring.keep(try .make(device: "box", seq: 7, hash: sent.hash!, receivedAt: at, key: communeKey), sent: sent, device: "box")
        }
        let kept = try await ring.countersigns(device: "box").count
        #expect(kept > 720 && kept < 720 + 40, "\(kept) kept")
        await ring.close()
    }
}
