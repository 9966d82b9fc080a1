import SystemCrypto
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
        var known = HeartbeatService.Known()
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
        // Issue 23: the countersignature names the device key, and the box keeps the commune's
        // binding of its key, which its exports carry.
        #expect(kept[0].deviceKey == key.publicKeyBase64)
        let binding = try #require(try await ring.keyBinding(), "the heartbeat's answer brought the binding")
        #expect(binding.isValid && binding.device == "thaithuy-0042" && binding.deviceKey == key.publicKeyBase64
                && binding.communeKey == communeKey.publicKeyBase64)
        let stranger = DeviceKey(Curve25519.Signing.PrivateKey())
        let foreign = try KeyBinding.make(device: "thaithuy-0042", deviceKey: key.publicKeyBase64, boundAt: t0, key: stranger)
        await #expect(throws: RingError.self, "a binding under a commune key the box has not pinned is not kept") {
            try await ring.keep(foreign, device: "thaithuy-0042", deviceKey: key.publicKeyBase64)
        }
        let otherKeys = try KeyBinding.make(device: "thaithuy-0042", deviceKey: stranger.publicKeyBase64, boundAt: t0, key: communeKey)
        await #expect(throws: RingError.self, "nor one of another key") {
            try await ring.keep(otherKeys, device: "thaithuy-0042", deviceKey: key.publicKeyBase64)
        }
        #expect(try await ring.keyBinding() == binding)
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
        #expect(try await ring2.keyBinding()?.deviceKey == intruderKey.publicKeyBase64, "the re-enrolled key is bound")
        // The old key's binding is kept, unchanged: bundles made before the re-key stay verifiable.
        let old = try await server.catalog.keyBinding(device: "thaithuy-0042", deviceKey: key.publicKeyBase64,
                                                      communeKey: communeKey.publicKeyBase64) { _ in throw CommuneError("made again") }
        #expect(old == binding)
        #expect(try await server.catalog.boundKeys(device: "thaithuy-0042") == [key.publicKeyBase64, intruderKey.publicKeyBase64])
        await ring2.close()
        await server.stop()
    }

    @Test func aCountersignatureNotOfTheHeadSentIsNotKept() async throws {
        let communeKey = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        let sent = Heartbeat.ChainHead(publicKey: "k", seq: 7, hash: String(repeating: "a", count: 64))
        let good = try Heartbeat.Countersign.make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: t0, key: communeKey)
        var other = good
        other.seq = 8
        await #expect(throws: RingError.self) { try await ring.keep(other, sent: sent, device: "box") }
        var forged = good
        forged.signature = Data(repeating: 1, count: 64).base64EncodedString()
        await #expect(throws: RingError.self) { try await ring.keep(forged, sent: sent, device: "box") }
        await #expect(throws: RingError.self) { try await ring.keep(good, sent: sent, device: "another-box") }
        try await ring.keep(good, sent: sent, device: "box")
        // 60 hours of heartbeats every 2 min (by the box's clock): the last day's all kept, one an hour before.
        for i in 0..<1800 {
            let at = t0 + Double(i * 120)
            try await ring.keep(try .make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: at, key: communeKey), sent: sent, device: "box", now: at)
        }
        let kept = try await ring.countersigns(device: "box").count
        #expect(kept > 720 && kept < 720 + 40, "\(kept) kept")
        await ring.close()
    }

    /// Issue 22: a countersignature dated 9999-12-31 once pruned 9 of 10 genuine ones (pruning
    /// went by the time the commune wrote in it), and four different commune keys were all
    /// kept. Now the first key kept (or server.commune_key) is pinned, and what is thinned goes
    /// by the box's own clock.
    @Test func theCommuneKeyIsPinnedAndItsTimesDeleteNothing() async throws {
        let communeKey = DeviceKey(Curve25519.Signing.PrivateKey())
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        let sent = Heartbeat.ChainHead(publicKey: "k", seq: 7, hash: String(repeating: "a", count: 64))
        for i in 0..<10 {
            try await ring.keep(try .make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: t0 + Double(i), key: communeKey), sent: sent, device: "box", now: t0 + Double(i))
        }
        let future = try Heartbeat.Countersign.make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: Timestamp.latest, key: communeKey)
        try await ring.keep(future, sent: sent, device: "box", now: t0 + 20)
        let ancient = try Heartbeat.Countersign.make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: Timestamp.earliest, key: communeKey)
        try await ring.keep(ancient, sent: sent, device: "box", now: t0 + 21)
        #expect(try await ring.countersigns(device: "box").count == 12, "nothing pruned by a peer's date")
        #expect(try await ring.pinnedCommuneKey() == communeKey.publicKeyBase64)
        for _ in 0..<4 {
            let stranger = DeviceKey(Curve25519.Signing.PrivateKey())
            let c = try Heartbeat.Countersign.make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: t0 + 30, key: stranger)
            await #expect(throws: RingError.self) { try await ring.keep(c, sent: sent, device: "box", now: t0 + 30) }
            // A configured key wins over the pinned one; the pinned key's then refused.
            try await ring.keep(c, sent: sent, device: "box", pinned: stranger.publicKeyBase64, now: t0 + 30)
            let own = try Heartbeat.Countersign.make(device: "box", deviceKey: sent.publicKey, seq: 7, hash: sent.hash!, receivedAt: t0 + 30, key: communeKey)
            await #expect(throws: RingError.self) { try await ring.keep(own, sent: sent, device: "box", pinned: stranger.publicKeyBase64, now: t0 + 30) }
        }
        #expect(try await ring.countersigns(device: "box").filter { $0.communeKey != communeKey.publicKeyBase64 }.count == 4)
        await ring.close()
    }

    /// Uploads carry their proof: a sealed clip from the enrolled key is filed verified and its
    /// records join the commune's copy of the chain; an unsealed one unverified; one whose media
    /// changed after sealing failed, naming the fragment.
    @Test func clipsAreFiledVerifiedUnverifiedOrFailed() async throws {
        let server = try await RunningServer.start(communeKey: DeviceKey(Curve25519.Signing.PrivateKey()))
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let (ring, service) = try await sealingBox(server, key: key)
        let unsealedRoot = NSTemporaryDirectory() + "box-" + UUID().uuidString
        try await segment(ring, at: 0)
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 10, end: t0 + 20, reason: "camera down"))
        try await segment(ring, at: 20)
        try await segment(ring, at: 30)
        var known = HeartbeatService.Known()
        #expect(await service.beat(&known) == .answered(newRequests: 0), "the key is bound first")
        // The third segment's media changes after it was sealed (its index row follows, so the
        // whole-file check at the commune passes: only the seal can tell).
        let third = try #require(try await ring.segments().last)
        let path = ring.path(of: third)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[100] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        _ = try await ring.index.run("UPDATE segment SET sha256 = ? WHERE id = ?", [.text(sha256Hex(bytes)), .integer(Int(third.id))])
        _ = try await ring.flag(.init(camera: "cam1", from: t0, to: t0 + 40, reason: "robbery"), now: t0 + 60)
        let queue = UploadQueue(ring: ring, client: TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/",
                                                              token: service.configuration.token), device: "thaithuy-0042", checksum: .sha256,
                                logger: Logger(label: "t"))
        #expect(try await queue.drain(sleep: { _ in }).uploaded.count == 3)
        let clips = try await server.catalog.clips().sorted { $0.start < $1.start }
        #expect(clips.map(\.proof) == ["verified", "verified", "failed"], "\(clips.map { ($0.proof, $0.proofDetail ?? "") })")
        #expect(clips[0].chainSeq == 1 && clips[1].chainSeq == 3 && clips[2].proofDetail?.contains("the header") == true)
        let records = try await server.catalog.query("SELECT seq FROM chain_record ORDER BY seq", []).map { $0.column("seq")?.integer ?? 0 }
        #expect(records == [1, 2, 3], "the gap came with the segment after it; a failed clip adds nothing")
        await ring.close()

        // A box that does not seal: its clips arrive unverified, and say why.
        let plain = try await Ring.open(.init(root: unsealedRoot, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        let token = try await server.catalog.addDevice(id: "old-box")
        let o = SegmentOrigin(camera: "cam1", start: t0, monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
        let p = try plain.prepareSegmentPath(for: o)
        let b = (0..<3000).map { _ in UInt8.random(in: 0...255) }
        try Data(b).write(to: URL(fileURLWithPath: p))
        _ = try await plain.commit(FinishedSegment(path: p, origin: o, bytes: Int64(b.count), sha256: sha256Hex(b), durationSeconds: 10))
        _ = try await plain.flag(.init(camera: "cam1", from: t0, to: t0 + 10, reason: "x"), now: t0 + 60)
        let q2 = UploadQueue(ring: plain, client: TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/", token: Secret(token)),
                             device: "old-box", checksum: .sha256, logger: Logger(label: "t"))
        #expect(try await q2.drain(sleep: { _ in }).uploaded.count == 1)
        let old = try #require(try await server.catalog.clips(device: "old-box").first)
        #expect(old.proof == "unverified" && old.proofDetail?.contains("no seal") == true)
        await plain.close()
        await server.stop()
    }

    /// A request's proof reaches past its footage: the commune asks the box (in its heartbeat
    /// answer) for the chain records it lacks, from the one before the first clip through the
    /// first head it countersigned at or after the last, and keeps only records sealed by the
    /// device's key.
    @Test func theCommuneFetchesTheChainARequestsProofNeeds() async throws {
        let server = try await RunningServer.start(communeKey: DeviceKey(Curve25519.Signing.PrivateKey()))
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let (ring, service) = try await sealingBox(server, key: key)
        for s in stride(from: 0.0, through: 50, by: 10) { try await segment(ring, at: s) }   // records 1–6
        var known = HeartbeatService.Known()
        #expect(await service.beat(&known) == .answered(newRequests: 0), "binds the key, countersigns head 6")
        #expect(known.chainWanted == nil, "no request, nothing wanted")
        let request = try await server.catalog.addRequest(device: "thaithuy-0042", camera: nil, from: t0 + 10, to: t0 + 30, reason: "theft")
        #expect(await service.beat(&known) == .answered(newRequests: 1))
        let queue = UploadQueue(ring: ring, client: TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/",
                                                              token: service.configuration.token), device: "thaithuy-0042", checksum: .sha256,
                                logger: Logger(label: "t"))
        #expect(try await queue.drain(sleep: { _ in }).uploaded.count == 2)
        let filed = try await server.catalog.clips().filter { $0.request == request.id }.compactMap(\.chainSeq).sorted()
        #expect(filed == [2, 3], "\(filed)")
        let partial = try await server.catalog.chainRecords(device: "thaithuy-0042", from: t0 + 10, to: t0 + 30)
        #expect(partial.compactMap(\.record?.seq) == [2, 3], "before the box is asked: only what the clips carried")

        // A forged or foreign copy is refused, and nothing of it kept.
        let held = try await ring.chain(after: 0)
        var forged = SealedRecord(body: held[0].body.replacingOccurrences(of: "\"seq\":1", with: "\"seq\":1 "), signature: held[0].signature)
        #expect(try await server.catalog.addChainRecords(device: "thaithuy-0042", [forged], wanted: .init(after: 0, through: 6)).refused != nil)
        let stranger = DeviceKey(Curve25519.Signing.PrivateKey())
        let record = try #require(held[0].record)
        forged = .init(body: held[0].body, signature: try SealedRecord.seal(record, with: stranger).signature)
        #expect(try await server.catalog.addChainRecords(device: "thaithuy-0042", [forged], wanted: .init(after: 0, through: 6)).refused?.contains("not sealed") == true)

        // The next answer asks for records 1 and 4–6 (through the countersigned head 6); the
        // heartbeat after it carries them; then nothing more is wanted.
        #expect(await service.beat(&known) == .answered(newRequests: 0))
        #expect(known.chainWanted == Heartbeat.ChainRange(after: 0, through: 6), "\(String(describing: known.chainWanted))")
        #expect(await service.beat(&known) == .answered(newRequests: 0))
        #expect(known.chainSent == 6 && known.chainWanted == nil, "\(known.chainSent) \(String(describing: known.chainWanted))")
        let full = try await server.catalog.chainRecords(device: "thaithuy-0042", from: t0 + 10, to: t0 + 30)
        #expect(full.compactMap(\.record?.seq) == [1, 2, 3, 4, 5, 6], "the record before, the range, on to the countersigned head")
        #expect(full == held.prefix(6).map { $0 }, "byte for byte the box's records")
        #expect(await service.beat(&known) == .answered(newRequests: 0))
        #expect(known.chainSent == 0, "nothing sent once the proof is whole")
        await ring.close()
        await server.stop()
    }

    /// Issue 22: the commune kept any record the device key sealed: unasked, out of order, with
    /// a broken `prev`, at seq 2^63−1 (a box could plant in the desk's own packages records that
    /// crashed the court's verifier). Now only what it asked for, in order from the first asked,
    /// linked, with every number inside its bound.
    @Test func theCommuneKeepsOnlyTheChainRecordsItAskedFor() async throws {
        let server = try await RunningServer.start()
        defer { Task { await server.stop() } }
        _ = try await server.catalog.addDevice(id: "box")
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        try await server.catalog.setKey(device: "box", publicKey: key.publicKeyBase64)
        var prev = ChainRecord.genesis, chain: [SealedRecord] = []
        for seq in 1...4 {
            let r = ChainRecord(device: "box", seq: Int64(seq), prev: prev, kind: .gap, camera: "cam1", start: t0 + Double(seq),
                                end: t0 + Double(seq + 1), clockSynchronized: true, reason: "x")
            let sealed = try SealedRecord.seal(r, with: key)
            chain.append(sealed)
            prev = sealed.hash
        }
        func held() async throws -> [Int] {
            try await server.catalog.query("SELECT seq FROM chain_record ORDER BY seq", []).compactMap { $0.column("seq")?.integer }
        }
        #expect(try await server.catalog.addChainRecords(device: "box", chain, wanted: nil).added == 0, "unasked")
        #expect(try await server.catalog.addChainRecords(device: "box", [chain[1], chain[2]], wanted: .init(after: 0, through: 4)).added == 0, "not from the first asked")
        #expect(try await server.catalog.addChainRecords(device: "box", [chain[0], chain[2]], wanted: .init(after: 0, through: 4)).added == 1, "out of order: the rest ignored")
        let broken = ChainRecord(device: "box", seq: 2, prev: String(repeating: "a", count: 64), kind: .gap, camera: "cam1", start: t0 + 2,
                                 end: t0 + 3, clockSynchronized: true, reason: "x")
        let refused = try await server.catalog.addChainRecords(device: "box", [try SealedRecord.seal(broken, with: key)], wanted: .init(after: 1, through: 4))
        #expect(refused.added == 0 && refused.refused?.contains("does not follow") == true, "\(String(describing: refused.refused))")
        var huge = ChainRecord(device: "box", seq: 2, prev: chain[0].hash, kind: .gap, camera: "cam1", start: t0 + 2, end: t0 + 3, clockSynchronized: true)
        huge.seq = Int64.max
        #expect(try await server.catalog.addChainRecords(device: "box", [try SealedRecord.seal(huge, with: key)], wanted: .init(after: 1, through: 4)).refused != nil)
        huge.seq = 2; huge.startMs = .min
        #expect(try await server.catalog.addChainRecords(device: "box", [try SealedRecord.seal(huge, with: key)], wanted: .init(after: 1, through: 4)).refused != nil)
        #expect(try await server.catalog.addChainRecords(device: "box", Array(chain[1...]), wanted: .init(after: 1, through: 3)).added == 2, "up to `through`")
        #expect(try await held() == [1, 2, 3])
    }

    /// The box fits the records asked for under the heartbeat's 256 kB bound (halving what it
    /// sends), and sends none unless it holds the first one asked for.
    @Test func chainRecordsAreFittedToTheHeartbeatBound() async throws {
        let server = try await RunningServer.start(communeKey: DeviceKey(Curve25519.Signing.PrivateKey()))
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let (ring, service) = try await sealingBox(server, key: key)
        var prev = ChainRecord.genesis
        var rows: [RingIndex.ChainRow] = []
        for seq in 1...3 {   // ~100 kB each: 1 500 fragments' hashes
            let pieces = (0..<1500).map { sha256Hex(Array("\(seq)-\($0)".utf8)) }
            let record = ChainRecord(device: "thaithuy-0042", seq: Int64(seq), prev: prev, kind: .segment, camera: "cam1", start: t0 + Double(seq * 10),
                                     end: t0 + Double(seq * 10 + 10), clockSynchronized: true, monotonicStartNs: 0, bootID: "b",
                                     file: "f\(seq).mp4", mediaBytes: 1, mediaSHA256: pieces[0], pieces: pieces, codec: "h264")
            let sealed = try SealedRecord.seal(record, with: key)
            rows.append(.init(sealed: sealed, record: record, segmentPath: nil))
            prev = sealed.hash
        }
        try await ring.index.insertChain(rows)
        let health = Heartbeat.Health(recording: "recording", version: "t", sentAt: t0)
        let (fitted, body) = try await service.fitted(.init(device: "thaithuy-0042", health: health), wanted: .init(after: 0, through: 3))
        #expect(body.count <= Heartbeat.Limits.maxBodyBytes && fitted.chain?.count == 1, "\(body.count) B, \(fitted.chain?.count ?? 0) records")
        #expect(fitted.chain?.first?.body == rows[0].sealed.body, "from the first one asked for")
        let (rest, _) = try await service.fitted(.init(device: "thaithuy-0042", health: health), wanted: .init(after: 2, through: 3))
        #expect(rest.chain?.count == 1 && rest.chain?.first?.body == rows[2].sealed.body)
        let (none, _) = try await service.fitted(.init(device: "thaithuy-0042", health: health), wanted: .init(after: 5, through: 9))
        #expect(none.chain == nil, "a box without the first record asked for sends none")
        await ring.close()
        await server.stop()
    }
}
