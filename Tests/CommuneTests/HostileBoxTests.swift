import SystemCrypto
import Evidence
import Foundation
import Testing
import Wire
@testable import Commune
@testable import Uplink

/// Issue 11, items 5 and 13: what one device can make the server do.
extension CommuneServerTests {
    @Test func aHeartbeatPastItsBoundsIsRefusedAndCoverageWorkIsNotQuadratic() async throws {
        let server = try await RunningServer.start()
        let token = try await server.catalog.addDevice(id: "box-a")
        let request = try await server.catalog.addRequest(device: "box-a", camera: nil, from: t0, to: t0 + 86400, reason: nil)
        func report(spans: Int) throws -> [UInt8] {
            let coverage = (0..<spans).map { i in
                CoverageSpan(from: t0 + Double(i) * 9, to: t0 + Double(i) * 9 + 9, status: i % 2 == 0 ? .pending : .notRecorded)
            }
            return try Heartbeat.encode(Heartbeat.Report(device: "box-a", health: .init(recording: "recording", version: "t", sentAt: t0),
                                                         requests: [.init(id: request.id, coverage: coverage)]))
        }
        // 9 000 spans (the report's 860 kB heartbeat): refused at once with what was over.
        let big = try await send(server, "POST", Heartbeat.path, token: token, headers: ["Content-Type": "application/json"], body: try report(spans: 9000))
        #expect(big.status == 413, "\(big.status)")
        // At the bound it is taken, and later reads stay fast (bounded, not timed to the ms).
        let clock = ContinuousClock()
        let atBound = try await send(server, "POST", Heartbeat.path, token: token, headers: ["Content-Type": "application/json"],
                                     body: try report(spans: Heartbeat.Limits.maxSpansPerRequest))
        #expect(atBound.status == 200, "\(atBound.status) \(String(decoding: atBound.body, as: UTF8.self))")
        let took = try await clock.measure { _ = try await server.catalog.requests() }
        #expect(took < .seconds(10), "\(took)")
        // The box coarsens what it sends to the bound.
        let many = (0..<9000).map { i in CoverageSpan(from: t0 + Double(i), to: t0 + Double(i) + 1, status: i % 3 == 0 ? .pending : .uploaded) }
        let coarse = Coverage.coarsened(many)
        #expect(coarse.count <= Heartbeat.Limits.maxSpansPerRequest && coarse.first?.from == t0 && coarse.last?.to == t0 + 9000)
        #expect(zip(coarse, coarse.dropFirst()).allSatisfy { $0.to == $1.from })
        // Painting 20 000 layers is near-linear now (it was 23 s for 9 000).
        let layers = (0..<20_000).map { i in CoverageSpan(from: t0 + Double(i), to: t0 + Double(i) + 1.5, status: i % 2 == 0 ? .pending : .uploaded) }
        var painted: [CoverageSpan] = []
        let paintTook = clock.measure { painted = Coverage.paint(from: t0, to: t0 + 20_001, base: .notRecorded, layers: layers) }
        #expect(paintTook < .seconds(10))
        #expect(painted.first?.status == .pending && painted.last?.status == .notRecorded)
        await server.stop()
    }

    /// Chain records in a heartbeat (issue 13): 200 are taken, 201 refused (413); a record the
    /// device did not seal is not kept, and the heartbeat still goes through.
    @Test func chainRecordsInAHeartbeatAreBoundedAndChecked() async throws {
        let server = try await RunningServer.start()
        let token = try await server.catalog.addDevice(id: "box-a")
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        func report(records: Int) throws -> [UInt8] {
            let copies = (0..<records).map { i in SealedRecord(body: "{\"seq\":\(i + 1)}", signature: "AAAA") }
            return try Heartbeat.encode(Heartbeat.Report(device: "box-a", health: .init(recording: "recording", version: "t", sentAt: t0),
                                                         evidence: .init(publicKey: key.publicKeyBase64, seq: nil, hash: nil), chain: copies))
        }
        let over = try await send(server, "POST", Heartbeat.path, token: token, headers: ["Content-Type": "application/json"],
                                  body: try report(records: Heartbeat.Limits.maxChainRecords + 1))
        #expect(over.status == 413 && String(decoding: over.body, as: UTF8.self).contains("chain records"), "\(over.status)")
        let at = try await send(server, "POST", Heartbeat.path, token: token, headers: ["Content-Type": "application/json"],
                                body: try report(records: Heartbeat.Limits.maxChainRecords))
        #expect(at.status == 200, "\(at.status) \(String(decoding: at.body, as: UTF8.self))")
        #expect(try await server.catalog.query("SELECT COUNT(*) AS n FROM chain_record", []).first?.column("n")?.integer == 0)
        await server.stop()
    }

    @Test func failedAndExpiredUploadsAreSweptAndGiveTheirQuotaBack() async throws {
        let server = try await RunningServer.start(deviceQuotaBytes: 10_000, expirySeconds: 4)
        let a = try await server.catalog.addDevice(id: "box-a")
        let body = [UInt8](repeating: 7, count: 6000)
        // creation-with-upload whose first chunk fails its checksum: no Location, nothing kept.
        var headers = ["Upload-Length": "6000", "Upload-Metadata": metadata(sha: sha256Hex(body)), "Content-Type": "application/offset+octet-stream",
                       "Upload-Checksum": "sha256 " + Data(repeating: 0, count: 32).base64EncodedString()]
        let bad = try await send(server, "POST", "/files/", token: a, headers: headers, body: Array(body.prefix(1000)))
        #expect(bad.status == 460)
        #expect(try await server.catalog.bytesHeld(device: "box-a") == 0)
        headers["Upload-Checksum"] = nil
        headers["Content-Type"] = nil
        #expect(try await send(server, "POST", "/files/", token: a, headers: headers).status == 201)
        #expect(try await send(server, "POST", "/files/", token: a, headers: headers).status == 507)
        try await Task.sleep(for: .seconds(4.5))
        // Expired: no longer counted, and swept from the disk and the catalog.
        #expect(try await send(server, "POST", "/files/", token: a, headers: headers).status == 201)
        try await Task.sleep(for: .seconds(4.5))
        #expect(try await server.endpoint.sweepExpired() == 2)
        let parts = (try? FileManager.default.contentsOfDirectory(atPath: server.data + "/.uploads")) ?? []
        #expect(parts.isEmpty, "\(parts)")
        await server.stop()
    }
}
