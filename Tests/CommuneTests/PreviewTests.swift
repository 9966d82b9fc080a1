import Foundation
import Logging
import Hostile
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Uplink

/// Lets the test act when the box starts its first video upload (after the preview).
final class BeforeVideo: TusTransport, @unchecked Sendable {
    let inner = HTTPTransport()
    private let lock = NSLock()
    private var fired = false
    let action: @Sendable () async throws -> Void

    init(_ action: @escaping @Sendable () async throws -> Void) { self.action = action }

    func perform(_ request: TusRequest) async throws -> TusResponse {
        let first = lock.withLock { () -> Bool in
            guard !fired, request.method == "POST", let m = request.headers["Upload-Metadata"], !m.contains("kind ") else { return false }
            fired = true
            return true
        }
        if first { try await action() }
        return try await inner.perform(request)
    }
}

/// Heartbeat state shared with the transport above.
final class KnownBox: @unchecked Sendable {
    var known = HeartbeatService.Known()
}

/// Issue 14's preview, box and commune in one process: the request's pictures arrive before any
/// video, the officer narrows the request, and the box stops sending what is outside.
@Suite struct PreviewTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!
    static func jpeg(_ n: Int, _ seed: UInt8) -> [UInt8] { fakeJPEG(n, seed: seed) }

    @Test func thePreviewArrivesFirstAndNarrowingStopsTheRest() async throws {
        let server = try await RunningServer.start()
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        var segs: [Segment] = []
        for i in 0..<4 {
            let o = SegmentOrigin(camera: "cam1", start: t0 + Double(i * 10), monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
            let path = try ring.prepareSegmentPath(for: o)
            let bytes = (0..<200_000).map { _ in UInt8.random(in: 0...255) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            segs.append(try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha256Hex(bytes), durationSeconds: 10)))
        }
        let request = try await server.catalog.addRequest(device: "thaithuy-0042", camera: nil, from: t0, to: t0 + 40, reason: "robbery", now: t0 + 100)
        let service = HeartbeatService(configuration: .init(url: server.url + Heartbeat.path, token: Secret(token), device: "thaithuy-0042", camera: "cam1"),
                                       transport: HTTPTransport(), ring: ring, version: "test", logger: Logger(label: "t")) {
            ("recording", nil, true, true)
        }
        let box = KnownBox()
        #expect(await service.beat(&box.known, now: t0 + 100) == .answered(newRequests: 1))
        #expect(try await server.catalog.preview(request: request.id) == nil, "nothing sent yet")

        // When the first video upload starts, the whole preview is there: the officer looks at it,
        // narrows the request to 20–30 s, and the box hears of it at its next heartbeat.
        let seen = PreviewSeen()
        let transport = BeforeVideo {
            let file = try #require(try await server.catalog.preview(request: request.id))
            let scan = try file.scan()
            seen.set(complete: file.complete, times: scan.entries.map(\.at).sorted())
            _ = try await server.catalog.narrow(request: request.id, from: self.t0 + 20, to: self.t0 + 30)
            #expect(await service.beat(&box.known, now: self.t0 + 101) == .answered(newRequests: 0))
        }
        var queue = UploadQueue(ring: ring, client: TusClient(transport: transport, collectionURL: server.url + "/files/", token: Secret(token)),
                                device: "thaithuy-0042", checksum: .sha256, logger: Logger(label: "t"))
        queue.makePreview = { segments, from, _ in
            segments.enumerated().map { i, s in PreviewSheet.Picture(at: max(s.start, from) + 1, jpeg: Self.jpeg(5000, UInt8(i))) }
        }
        let report = try await queue.drain(sleep: { _ in })
        #expect(seen.complete == true && seen.times == [t0 + 1, t0 + 11, t0 + 21, t0 + 31], "the whole preview arrived before any video")
        #expect(report.previews.count == 1)
        #expect(report.stopped == [segs[0].id], "the upload started before the box heard stops at its next chunk")
        #expect(report.uploaded == [segs[2].id], "only what the narrowed request covers goes")
        #expect(try await server.catalog.clips().map(\.start) == [t0 + 20])

        // The request is complete once its narrowed range has arrived; its preview stays.
        #expect(await service.beat(&box.known, now: t0 + 102) == .answered(newRequests: 0))
        let done = try #require(try await server.catalog.requests(id: request.id).first)
        #expect(done.from == t0 + 20 && done.to == t0 + 30 && done.state == .complete)
        let kept = try #require(try await server.catalog.preview(request: request.id))
        #expect(kept.complete && kept.pictures == 4)
        #expect(try kept.jpeg(try kept.scan().entries[0]) == Self.jpeg(5000, 0))
        await #expect(throws: Catalog.NarrowError.self) { try await server.catalog.narrow(request: request.id, from: self.t0 + 21, to: self.t0 + 29) }
        await ring.close()
        await server.stop()
    }

    /// The commune takes a preview only for a request of the box that sends it, within its
    /// bound, and well-formed; what it refuses says why, and leaves nothing behind.
    @Test func aPreviewIsCheckedBeforeItIsKept() async throws {
        let server = try await RunningServer.start()
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        _ = try await server.catalog.addDevice(id: "other-0001")
        let mine = try await server.catalog.addRequest(device: "thaithuy-0042", camera: nil, from: t0, to: t0 + 40, reason: nil, now: t0)
        let theirs = try await server.catalog.addRequest(device: "other-0001", camera: nil, from: t0, to: t0 + 40, reason: nil, now: t0)
        let client = TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/", token: Secret(token))
        func send(_ bytes: [UInt8], request: String, length: Int64? = nil) async throws -> TusClient.Result {
            let m = UploadMetadata([("device", "thaithuy-0042"), ("camera", "cam1"), ("start", t0.rfc3339), ("end", (t0 + 40).rfc3339),
                                    ("sha256", sha256Hex(bytes)), ("filename", "flag-1.jpv"), ("kind", "preview"), ("request", request)])
            return try await client.upload(length: length ?? Int64(bytes.count), metadata: m, progress: .init(), checksum: .sha256,
                                           read: { o, n in Array(bytes[Int(o)..<min(bytes.count, Int(o) + n)]) }, save: { _ in }, sleep: { _ in })
        }
        let good = PreviewSheet.encode([.init(at: t0 + 5, jpeg: Self.jpeg(900, 1))])
        guard case .failed(let why, _) = try await send(good, request: theirs.id) else { Issue.record("another box's request"); return }
        #expect(why.contains("404") || why.contains("no request"))
        guard case .failed(let big, _) = try await send(good, request: mine.id, length: Int64(PreviewSheet.Limits.maxBytes + 1)) else {
            Issue.record("over the bound"); return
        }
        #expect(big.contains("413") || big.contains("limited"))
        var broken = good
        broken[broken.count - 1] = 0
        guard case .failed(let bad, _) = try await send(broken, request: mine.id) else { Issue.record("not a JPEG"); return }
        #expect(bad.contains("422") || bad.contains("not well-formed"))
        #expect(try await server.catalog.preview(request: mine.id) == nil, "nothing refused is kept")
        guard case .uploaded = try await send(good, request: mine.id) else { Issue.record("a good preview"); return }
        #expect(try await server.catalog.preview(request: mine.id)?.pictures == 1)
        // Issue 22: a header-only preview replaced a good one; a decompression bomb was served.
        guard case .failed(let empty, _) = try await send(PreviewSheet.magic, request: mine.id) else { Issue.record("no picture"); return }
        var kept = try await server.catalog.preview(request: mine.id)?.pictures
        #expect(empty.contains("422") && kept == 1, "\(empty)")
        let bomb = PreviewSheet.encode([.init(at: t0 + 5, jpeg: fakeJPEG(192, width: 65535, height: 65535))])
        guard case .failed(let huge, _) = try await send(bomb, request: mine.id) else { Issue.record("65535 × 65535"); return }
        kept = try await server.catalog.preview(request: mine.id)?.pictures
        #expect(huge.contains("422") && kept == 1, "\(huge)")
        let two = PreviewSheet.encode([.init(at: t0 + 5, jpeg: Self.jpeg(900, 2)), .init(at: t0 + 6, jpeg: Self.jpeg(900, 3))])
        guard case .uploaded = try await send(two, request: mine.id) else { Issue.record("a fuller preview"); return }
        guard case .failed(let fewer, _) = try await send(good, request: mine.id) else { Issue.record("fewer pictures"); return }
        #expect(fewer.contains("422"), "\(fewer)")
        let held = try #require(try await server.catalog.preview(request: mine.id))
        let heldPictures = try held.scan().entries.count
        #expect(held.pictures == 2 && heldPictures == 2, "the fuller preview is kept")

        // The operator API narrows too: an operator's token, inside the range, a known request.
        let http = HTTPTransport()
        let op = try await server.catalog.addOperator(name: "ops")
        func narrow(_ id: String, _ body: String, token: String) async throws -> TusResponse {
            try await http.perform(TusRequest(method: "POST", url: server.url + "/api/v1/requests/\(id)/narrow",
                                              headers: ["Authorization": "Bearer \(token)"], body: Array(body.utf8)))
        }
        let inside = #"{"from":"2026-11-29T14:00:10Z","to":"2026-11-29T14:00:20Z"}"#
        #expect(try await narrow(mine.id, inside, token: token).status == 401, "a device token narrows nothing")
        #expect(try await narrow(mine.id, #"{"from":"2026-11-29T13:59:00Z","to":"2026-11-29T14:00:20Z"}"#, token: op).status == 400)
        #expect(try await narrow("req-nothing", inside, token: op).status == 404)
        let ok = try await narrow(mine.id, inside, token: op)
        #expect(ok.status == 200 && String(decoding: ok.body, as: UTF8.self).contains("\"from\":\"2026-11-29T14:00:10"))
        #expect(try await server.catalog.auditLog().first?.action == "request narrowed")
        await server.stop()
    }
}

/// Issue 22: `commune requests --preview --out` wrote pictures of the same millisecond over each other.
@Test func picturesOfOneMillisecondGetNamesOfTheirOwn() {
    let t = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!
    let entries = [PreviewSheet.Entry(at: t + 1, offset: 300, length: 10), PreviewSheet.Entry(at: t, offset: 100, length: 10),
                   PreviewSheet.Entry(at: t, offset: 200, length: 10)]
    let names = Catalog.PreviewFile.fileNames(request: "req-1", entries).map(\.1)
    #expect(names == ["req-1-20261129T140000.000Z.jpg", "req-1-20261129T140000.000Z-2.jpg", "req-1-20261129T140001.000Z.jpg"])
    #expect(Set(names).count == names.count)
}

final class PreviewSeen: @unchecked Sendable {
    private let lock = NSLock()
    private var _complete: Bool?
    private var _times: [Timestamp] = []
    func set(complete: Bool, times: [Timestamp]) { lock.withLock { _complete = complete; _times = times } }
    var complete: Bool? { lock.withLock { _complete } }
    var times: [Timestamp] { lock.withLock { _times } }
}
