import Foundation
import Logging
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Uplink

/// Footage requests end to end in one process: operator → commune → heartbeat → box flags →
/// uploads → coverage back to the operator.
@Suite struct RequestTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!

    func box(_ server: RunningServer) async throws -> (Ring, String) {
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        return (ring, token)
    }

    func segment(_ ring: Ring, at seconds: Double) async throws -> Segment {
        let o = SegmentOrigin(camera: "cam1", start: t0 + seconds, monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
        let path = try ring.prepareSegmentPath(for: o)
        let bytes = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha256Hex(bytes), durationSeconds: 10))
    }

    func heartbeat(_ server: RunningServer, _ ring: Ring, token: String?, path: String = Heartbeat.path) -> HeartbeatService {
        HeartbeatService(configuration: .init(url: server.url + path, token: token.map { Secret($0) }, device: "thaithuy-0042", camera: "cam1"),
                         transport: HTTPTransport(), ring: ring, version: "test", logger: Logger(label: "t")) {
            ("waiting_for_camera", "camera unreachable", false, true)
        }
    }

    @Test func requestIsTakenUploadedAndReportedWithCoverage() async throws {
        let server = try await RunningServer.start()
        let (ring, token) = try await box(server)
        var segs: [Segment] = []
        for i in 0..<4 { segs.append(try await segment(ring, at: Double(i * 10))) }          // [0,40)
        try await ring.recordGap(Gap(camera: "cam1", start: t0 + 40, end: t0 + 60, reason: "camera unreachable"))
        try await ring.evict([segs[0]])                                                       // [0,10) overwritten
        let request = try await server.catalog.addRequest(device: "thaithuy-0042", camera: nil, from: t0 - 5, to: t0 + 45,
                                                          reason: "robbery", now: t0 + 100)
        #expect(request.state == .waiting)

        let service = heartbeat(server, ring, token: token)
        var known = HeartbeatService.Known()
        #expect(await service.beat(&known, now: t0 + 100) == .answered(newRequests: 1))
        let flag = try #require(try await ring.flag(requestID: request.id))
        #expect(flag.source == .request && flag.reason == "robbery" && flag.segments == 3)
        #expect(try await server.catalog.devices().first?.health?.recording == "waiting_for_camera")

        // The second heartbeat carries the coverage.
        #expect(await service.beat(&known, now: t0 + 101) == .answered(newRequests: 0))
        var stored = try #require(try await server.catalog.requests(id: request.id).first)
        #expect(stored.state == .accepted)
        #expect(stored.coverage == [
            CoverageSpan(from: t0 - 5, to: t0, status: .notRecorded),
            CoverageSpan(from: t0, to: t0 + 10, status: .evicted),
            CoverageSpan(from: t0 + 10, to: t0 + 40, status: .pending),
            CoverageSpan(from: t0 + 40, to: t0 + 45, status: .notRecorded),
        ])

        // The uploads go; the commune sees them as uploaded before the next heartbeat.
        let queue = UploadQueue(ring: ring, client: TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/", token: Secret(token)),
                                device: "thaithuy-0042", checksum: .sha256, logger: Logger(label: "t"))
        let report = try await queue.drain(sleep: { _ in })
        #expect(report.uploaded.count == 3)
        stored = try #require(try await server.catalog.requests(id: request.id).first)
        #expect(stored.state == .complete)
        #expect(stored.coverage.map(\.status) == [.notRecorded, .evicted, .uploaded, .notRecorded])
        #expect(try await server.catalog.clips().allSatisfy { $0.request == request.id })

        // Once complete the commune stops sending it.
        #expect(await service.beat(&known, now: t0 + 102) == .answered(newRequests: 0))
        #expect(known.requests.isEmpty)
        #expect(try await server.catalog.requests(id: request.id).first?.state == .complete)
        await ring.close()
        await server.stop()
    }

    @Test func refusalsAreClear() async throws {
        let server = try await RunningServer.start()
        let (ring, token) = try await box(server)
        let http = HTTPTransport()
        let url = server.url + Heartbeat.path
        let body = try Heartbeat.encode(Heartbeat.Report(device: "thaithuy-0042", health: .init(recording: "recording", version: "t", sentAt: t0)))
        #expect(try await http.perform(TusRequest(method: "POST", url: url, headers: [:], body: body)).status == 401)
        #expect(try await http.perform(TusRequest(method: "POST", url: url, headers: ["Authorization": "Bearer nope"], body: body)).status == 401)
        let other = try await server.catalog.addDevice(id: "other-0001")
        #expect(try await http.perform(TusRequest(method: "POST", url: url, headers: ["Authorization": "Bearer \(other)"], body: body)).status == 403)
        let garbage = try await http.perform(TusRequest(method: "POST", url: url, headers: ["Authorization": "Bearer \(token)"], body: Array("{not json".utf8)))
        #expect(garbage.status == 400 && String(decoding: garbage.body, as: UTF8.self).contains("not the JSON expected"))

        // A box pointed at a plain tus server (no heartbeat endpoint) says so and carries on.
        var known = HeartbeatService.Known()
        guard case .refused(let why) = await heartbeat(server, ring, token: token, path: "/elsewhere").beat(&known) else {
            Issue.record("expected a refusal"); return
        }
        #expect(why.contains("no heartbeat endpoint"))
        guard case .refused(let why2) = await heartbeat(server, ring, token: "wrong").beat(&known) else {
            Issue.record("expected a refusal"); return
        }
        #expect(why2.contains("server.token"))

        // The operator API needs an operator token, and checks what it is given.
        let api = server.url + "/api/v1/requests"
        let ask = Array(#"{"device":"thaithuy-0042","from":"2026-11-29T14:00:00Z","to":"2026-11-29T14:05:00Z","reason":"theft"}"#.utf8)
        #expect(try await http.perform(TusRequest(method: "POST", url: api, headers: ["Authorization": "Bearer \(token)"], body: ask)).status == 401)
        let op = try await server.catalog.addOperator(name: "ops")
        let made = try await http.perform(TusRequest(method: "POST", url: api, headers: ["Authorization": "Bearer \(op)"], body: ask))
        #expect(made.status == 201 && String(decoding: made.body, as: UTF8.self).contains("\"state\":\"waiting\""))
        let bad = Array(#"{"device":"nobody","from":"2026-11-29T14:00:00Z","to":"2026-11-29T14:05:00Z"}"#.utf8)
        let refused = try await http.perform(TusRequest(method: "POST", url: api, headers: ["Authorization": "Bearer \(op)"], body: bad))
        #expect(refused.status == 400 && String(decoding: refused.body, as: UTF8.self).contains("no device nobody"))
        let list = try await http.perform(TusRequest(method: "GET", url: api, headers: ["Authorization": "Bearer \(op)"]))
        #expect(list.status == 200 && String(decoding: list.body, as: UTF8.self).contains("theft"))
        await ring.close()
        await server.stop()
    }

    /// A request the box cannot pin (cap reached) comes back refused with the reason, and is
    /// retried at each heartbeat until the pins free up.
    @Test func pinCapRefusalReachesTheOperator() async throws {
        let server = try await RunningServer.start()
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1_000_000),
                                             reserveBytes: 0, maxPinnedPercent: 10), logger: Logger(label: "t"))
        for i in 0..<3 { _ = try await segment(ring, at: Double(i * 10)) }
        let request = try await server.catalog.addRequest(device: "thaithuy-0042", camera: nil, from: t0, to: t0 + 30, reason: nil, now: t0 + 60)
        let service = heartbeat(server, ring, token: token)
        var known = HeartbeatService.Known()
        _ = await service.beat(&known, now: t0 + 60)
        #expect(try await ring.flag(requestID: request.id) == nil)
        _ = await service.beat(&known, now: t0 + 61)
        let stored = try #require(try await server.catalog.requests(id: request.id).first)
        #expect(stored.state == .refused && stored.error?.contains("max_pinned_percent") == true)
        #expect(known.requests.map(\.id) == [request.id], "still offered to the box")
        await ring.close()
        await server.stop()
    }
}
