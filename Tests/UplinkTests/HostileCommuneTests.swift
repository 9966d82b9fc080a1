import SystemCrypto
import Evidence
import Foundation
import Logging
import Synchronization
import Testing
import Wire
@testable import Ring
@testable import Uplink

/// A commune that answers heartbeats with whatever body the test gives it, and counts them.
final class ScriptedCommune: TusTransport, @unchecked Sendable {
    let answer: Mutex<@Sendable (Int) -> [UInt8]>
    let beats = Atomic<Int>(0)
    let lastBody = Mutex<[UInt8]>([])
    init(_ answer: @escaping @Sendable (Int) -> [UInt8]) { self.answer = Mutex(answer) }
    func perform(_ request: TusRequest) async throws -> TusResponse {
        let n = beats.add(1, ordering: .relaxed).newValue
        lastBody.withLock { $0 = request.body }
        return TusResponse(status: 200, headers: [:], body: answer.withLock { $0 }(n))
    }
}

/// Issue 22: a hostile commune cannot make the box work without bound, starve its heartbeat, or
/// have it send its chain over and over.
@Suite struct HostileCommuneTests {
    static let t0 = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!

    static func service(_ commune: ScriptedCommune) async throws -> (Ring, HeartbeatService) {
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        var configuration = HeartbeatService.Configuration(url: "https://commune.test/api/v1/heartbeat", token: Secret("t"), device: "box", camera: "cam1")
        configuration.previews = false
        configuration.publicKey = DeviceKey(Curve25519.Signing.PrivateKey()).publicKeyBase64
        let service = HeartbeatService(configuration: configuration, transport: commune, ring: ring, version: "t", logger: Logger(label: "t")) {
            ("recording", nil, true, true)
        }
        return (ring, service)
    }

    static func requests(_ n: Int, prefix: String) -> String {
        (0..<n).map { #"{"id":"\#(prefix)-\#($0)","from":"2026-12-03T09:00:00Z","to":"2026-12-03T09:10:00Z"}"# }.joined(separator: ",")
    }

    /// 2 000 requests once took 1.5 cores and the heartbeat: an answer over the bound is refused
    /// whole, with why, and nothing is flagged.
    @Test func anAnswerOfTooManyRequestsIsRefusedWithWhy() async throws {
        let commune = ScriptedCommune { _ in Array(#"{"requests":[\#(Self.requests(2000, prefix: "r"))]}"#.utf8) }
        let (ring, service) = try await Self.service(commune)
        var known = HeartbeatService.Known()
        guard case .refused(let why) = await service.beat(&known, now: Self.t0) else { Issue.record("answered"); return }
        #expect(why.contains("requests") && why.contains("at most 100"), "\(why)")
        #expect(try await ring.flags().isEmpty)
        await ring.close()
    }

    /// At the bound: 100 new requests are taken twenty a heartbeat, and a commune that names new
    /// requests in every answer gets one quick follow-up, never two in a row.
    @Test func newRequestsAreTakenTwentyABeatAtTheHeartbeatsOwnCadence() async throws {
        let commune = ScriptedCommune { n in let prefix = "b\(n)"; return Array(#"{"requests":[\#(Self.requests(100, prefix: prefix))]}"#.utf8) }
        let (ring, service) = try await Self.service(commune)
        var known = HeartbeatService.Known()
        var pauses: [Duration] = []
        for _ in 0..<4 {
            let outcome = await service.beat(&known, now: Self.t0)
            #expect(outcome == .answered(newRequests: HeartbeatService.maxNewRequestsPerBeat))
            #expect(known.requests.count == HeartbeatService.maxNewRequestsPerBeat, "the rest wait for the next answer")
            pauses.append(known.pause(after: outcome, interval: .seconds(60), retry: .seconds(2)))
        }
        #expect(pauses == [.milliseconds(200), .seconds(60), .milliseconds(200), .seconds(60)], "\(pauses)")
        await ring.close()
    }

    /// chain_wanted past Int64's reach is refused where it is read; within the bounds but past
    /// the box's head, the box sends what it has once, and a commune that asks again for the same
    /// records is answered at the heartbeat's own cadence (it was every 1.27 s, 37 kB/s).
    @Test func chainWantedIsBoundedByTheBoxsOwnChain() async throws {
        let huge = ScriptedCommune { _ in Array(#"{"requests":[],"chain_wanted":{"after":0,"through":9223372036854775807}}"#.utf8) }
        let (ring0, service0) = try await Self.service(huge)
        var known0 = HeartbeatService.Known()
        guard case .refused(let why) = await service0.beat(&known0, now: Self.t0) else { Issue.record("answered"); return }
        #expect(why.contains("chain_wanted.through"), "\(why)")
        await ring0.close()

        let greedy = ScriptedCommune { _ in Array(#"{"requests":[],"chain_wanted":{"after":0,"through":1000000000}}"#.utf8) }
        let (ring, service) = try await Self.service(greedy)
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        var prev = ChainRecord.genesis, rows: [RingIndex.ChainRow] = []
        for seq in 1...3 {
            let record = ChainRecord(device: "box", seq: Int64(seq), prev: prev, kind: .gap, camera: "cam1", start: Self.t0 + Double(seq),
                                     end: Self.t0 + Double(seq + 1), clockSynchronized: true, reason: "x")
            let sealed = try SealedRecord.seal(record, with: key)
            rows.append(.init(sealed: sealed, record: record, segmentPath: nil))
            prev = sealed.hash
        }
        try await ring.index.insertChain(rows)
        var known = HeartbeatService.Known()
        var pauses: [Duration] = []
        for _ in 0..<3 {
            let outcome = await service.beat(&known, now: Self.t0)
            pauses.append(known.pause(after: outcome, interval: .seconds(60), retry: .seconds(2)))
        }
        #expect(known.chainSent == 3 && !known.chainProgressed, "the box sent its three records, and no more than it has")
        #expect(pauses.allSatisfy { $0 == .seconds(60) }, "asked again for the same records: at the heartbeat's cadence \(pauses)")
        let sent = try Heartbeat.decode(Heartbeat.Report.self, from: greedy.lastBody.withLock { $0 })
        #expect(sent.chain?.count == 3)
        await ring.close()
    }

    /// A commune that keeps what it was sent and asks for the next records is served quickly.
    @Test func aCommuneThatMovesOnGetsTheNextRecordsSoon() {
        var known = HeartbeatService.Known()
        known.chainProgressed = true
        #expect(known.pause(after: .answered(newRequests: 0), interval: .seconds(60), retry: .seconds(2)) == .seconds(1))
        #expect(known.pause(after: .unreachable("x"), interval: .seconds(60), retry: .seconds(2)) == .seconds(2))
    }
}
