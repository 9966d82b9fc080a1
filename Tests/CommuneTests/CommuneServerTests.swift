import SystemCrypto
import Evidence
import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Uplink

/// The commune server on a loopback port, and the box's real uplink (async-http-client) talking
/// to it.
struct RunningServer {
    let url: String
    let data: String
    let catalog: Catalog
    let task: Task<Void, any Error>
    let endpoint: TusEndpoint

    static func start(deviceQuotaBytes: Int64? = nil, expirySeconds: Double? = nil, communeKey: DeviceKey? = nil) async throws -> RunningServer {
        let data = NSTemporaryDirectory() + "commune-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let catalog = try await Catalog.open(path: data + "/catalog.sqlite", logger: Logger(label: "t"))
        let router = Router()
        var tus = TusEndpoint.Configuration(data: data)
        tus.deviceQuotaBytes = deviceQuotaBytes
        if let expirySeconds { tus.expirySeconds = expirySeconds }
        let endpoint = TusEndpoint(configuration: tus, catalog: catalog, logger: Logger(label: "t"))
        endpoint.register(on: router)
        ControlEndpoint(catalog: catalog, communeKey: communeKey, logger: Logger(label: "t")).register(on: router)
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
                              logger: Logger(label: "t"))
        let task = Task { try await app.runService() }
        var port = 0
        for await p in portStream { port = p; break }
        return RunningServer(url: "http://127.0.0.1:\(port)", data: data, catalog: catalog, task: task, endpoint: endpoint)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        await catalog.close()
    }
}

func sha256Hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

@Suite struct CommuneServerTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!

    @Test func flaggedFootageArrivesVerifiedAndPinsAreReleased() async throws {
        let server = try await RunningServer.start()
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        let root = NSTemporaryDirectory() + "box-" + UUID().uuidString
        let ring = try await Ring.open(.init(root: root, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var contents: [[UInt8]] = []
        for i in 0..<4 {
            let o = SegmentOrigin(camera: "cam1", start: t0 + Double(i * 10), monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
            let path = try ring.prepareSegmentPath(for: o)
            let bytes = (0..<700_000).map { _ in UInt8.random(in: 0...255) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha256Hex(bytes), durationSeconds: 10))
            contents.append(bytes)
        }
        _ = try await ring.flag(.init(camera: "cam1", from: t0 + 15, to: t0 + 25, reason: "accident QL37B"), now: t0 + 60)
        let queue = UploadQueue(ring: ring, client: TusClient(transport: HTTPTransport(), collectionURL: server.url + "/files/", token: Secret(token)),
                                device: "thaithuy-0042", checksum: .sha256, logger: Logger(label: "t"))
        let report = try await queue.drain(sleep: { _ in })
        #expect(report.uploaded.count == 2 && report.failed.isEmpty, "\(report)")

        let clips = try await server.catalog.clips()
        #expect(clips.count == 2)
        for (clip, n) in zip(clips, [1, 2]) {
            #expect(clip.device == "thaithuy-0042" && clip.camera == "cam1" && clip.reason == "accident QL37B")
            #expect(clip.start == t0 + Double(n * 10))
            #expect(clip.path.hasPrefix(server.data + "/thaithuy-0042/cam1/2026-11-29/"))
            let stored = try [UInt8](Data(contentsOf: URL(fileURLWithPath: clip.path)))
            #expect(stored == contents[n] && clip.sha256 == sha256Hex(contents[n]), "byte-identical")
        }
        #expect(try await ring.usage().pinnedBytes == 0)
        #expect(try await ring.segments().filter(\.uploaded).count == 2, "unflagged segments never leave the box")
        await ring.close()
        await server.stop()
    }

    func send(_ server: RunningServer, _ method: String, _ path: String, token: String?, headers: [String: String] = [:], body: [UInt8] = []) async throws -> TusResponse {
        var h = headers
        h["Tus-Resumable"] = "1.0.0"
        if let token { h["Authorization"] = "Bearer \(token)" }
        return try await HTTPTransport().perform(TusRequest(method: method, url: server.url + path, headers: h, body: body))
    }

    func metadata(device: String = "box-a", camera: String = "cam1", filename: String = "a.mp4", sha: String) -> String {
        UploadMetadata([("device", device), ("camera", camera), ("start", "2026-11-29T14:00:00Z"), ("end", "2026-11-29T14:00:10Z"),
                        ("sha256", sha), ("filename", filename)]).encoded
    }

    @Test func refusesWhatItMust() async throws {
        let server = try await RunningServer.start()
        let a = try await server.catalog.addDevice(id: "box-a")
        let b = try await server.catalog.addDevice(id: "box-b")
        let body: [UInt8] = Array("hello commune".utf8)
        let sha = sha256Hex(body)
        let create = ["Upload-Length": String(body.count), "Upload-Metadata": metadata(sha: sha)]

        #expect(try await send(server, "POST", "/files/", token: nil, headers: create).status == 401)
        #expect(try await send(server, "POST", "/files/", token: "not-a-token", headers: create).status == 401)
        #expect(try await send(server, "POST", "/files/", token: b, headers: create).status == 403, "metadata names another device")
        let traversal = ["Upload-Length": "3", "Upload-Metadata": metadata(camera: "../../etc", sha: sha)]
        #expect(try await send(server, "POST", "/files/", token: a, headers: traversal).status == 400)
        let traversal2 = ["Upload-Length": "3", "Upload-Metadata": metadata(filename: "../x.mp4", sha: sha)]
        #expect(try await send(server, "POST", "/files/", token: a, headers: traversal2).status == 400)

        let created = try await send(server, "POST", "/files/", token: a, headers: create)
        #expect(created.status == 201)
        let location = try #require(created.headers.first { $0.key.lowercased() == "location" }?.value)
        // Another device cannot see or write this upload.
        #expect(try await send(server, "HEAD", location, token: b).status == 404)
        let patch = ["Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"]
        #expect(try await send(server, "PATCH", location, token: b, headers: patch, body: body).status == 404)
        // A damaged chunk is refused with 460.
        var bad = patch
        bad["Upload-Checksum"] = "sha256 " + Data(SHA256.hash(data: Array("other".utf8))).base64EncodedString()
        #expect(try await send(server, "PATCH", location, token: a, headers: bad, body: body).status == 460)
        // A wrong offset is a conflict.
        var wrong = patch
        wrong["Upload-Offset"] = "5"
        #expect(try await send(server, "PATCH", location, token: a, headers: wrong, body: body).status == 409)
        #expect(try await send(server, "PATCH", location, token: a, headers: patch, body: body).status == 204)
        #expect(try await server.catalog.clips().count == 1)
        await server.stop()
    }

    @Test func wholeFileMismatchIsDiscarded() async throws {
        let server = try await RunningServer.start()
        let a = try await server.catalog.addDevice(id: "box-a")
        let body: [UInt8] = Array("hello commune".utf8)
        let created = try await send(server, "POST", "/files/", token: a,
                                     headers: ["Upload-Length": String(body.count), "Upload-Metadata": metadata(sha: String(repeating: "0", count: 64))])
        let location = try #require(created.headers.first { $0.key.lowercased() == "location" }?.value)
        let r = try await send(server, "PATCH", location, token: a, headers: ["Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"], body: body)
        #expect(r.status == 410)
        #expect(try await server.catalog.clips().isEmpty)
        #expect(try await send(server, "HEAD", location, token: a).status == 404)
        await server.stop()
    }

    @Test func advertisesTusExtensions() async throws {
        let server = try await RunningServer.start()
        let r = try await send(server, "OPTIONS", "/files/", token: nil)
        #expect(r.status == 204)
        let ext = r.headers.first { $0.key.lowercased() == "tus-extension" }?.value ?? ""
        #expect(ext.contains("creation") && ext.contains("checksum") && ext.contains("termination") && ext.contains("expiration"))
        #expect(TusUploadStateMachine.checksum(advertised: r.headers.first { $0.key.lowercased() == "tus-checksum-algorithm" }?.value) == .sha256)
        await server.stop()
    }

    /// A PATCH whose connection hangs mid-body (a dead 4G link) is stopped by the box's next
    /// PATCH and keeps what arrived; the newcomer learns the new offset (409, then HEAD) and
    /// sends only the rest. Nothing that arrived is sent twice.
    @Test func cutOffBodyKeepsWhatArrivedAndANewerPatchTakesOver() async throws {
        let server = try await RunningServer.start()
        let a = try await server.catalog.addDevice(id: "box-a")
        let body = (0..<1_000_000).map { _ in UInt8.random(in: 0...255) }
        let created = try await send(server, "POST", "/files/", token: a,
                                     headers: ["Upload-Length": String(body.count), "Upload-Metadata": metadata(sha: sha256Hex(body))])
        let location = try #require(created.headers.first { $0.key.lowercased() == "location" }?.value)
        let port = UInt16(server.url.split(separator: ":").last!)!

        // The first PATCH: its head and 300 000 bytes, then the link goes dead (the socket stays open).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(connected == 0)
        let head = "PATCH \(location) HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer \(a)\r\n" +
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n" +
            "Upload-Checksum: sha256 \(Data(SHA256.hash(data: body)).base64EncodedString())\r\nContent-Length: \(body.count)\r\n\r\n"
        let first = Array(head.utf8) + body[0..<300_000]
        var sent = 0
        while sent < first.count {
            let n = first.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, first.count - sent, 0) }
            try #require(n > 0)
            sent += n
        }
        // Wait (bounded) until the server has written what came.
        let part = server.data + "/.uploads/" + location.split(separator: "/").last! + ".part"
        for _ in 0..<200 {
            if ((try? FileManager.default.attributesOfItem(atPath: part))?[.size] as? Int ?? 0) >= 300_000 { break }
            try await Task.sleep(for: .milliseconds(50))
        }

        // The box (restarted) sends from the offset it knew: the hanging PATCH is stopped and kept.
        let patch = ["Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"]
        let again = try await send(server, "PATCH", location, token: a, headers: patch, body: body)
        #expect(again.status == 409, "the offset moved under it")
        let offset = try await send(server, "HEAD", location, token: a).headers.first { $0.key.lowercased() == "upload-offset" }?.value
        #expect(offset == "300000", "what arrived before the link died is kept")
        let rest = Array(body[300_000...])
        var resume = patch
        resume["Upload-Offset"] = "300000"
        resume["Upload-Checksum"] = "sha256 " + Data(SHA256.hash(data: rest)).base64EncodedString()
        #expect(try await send(server, "PATCH", location, token: a, headers: resume, body: rest).status == 204)
        let clip = try #require(try await server.catalog.clips().first)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: clip.path))) == body, "byte-identical")
        await server.stop()
    }

    /// creation-with-upload: the first chunk rides in the POST, the commune takes it (and its
    /// checksum) and answers with the offset; the rest goes by PATCH. One round trip less per file.
    @Test func firstChunkRidesInThePost() async throws {
        final class Recorder: TusTransport, @unchecked Sendable {
            let inner = HTTPTransport()
            let lock = NSLock()
            var log: [(String, Int, TusResponse)] = []
            func perform(_ request: TusRequest) async throws -> TusResponse {
                let r = try await inner.perform(request)
                lock.withLock { log.append((request.method, request.body.count, r)) }
                return r
            }
        }
        let server = try await RunningServer.start()
        let a = try await server.catalog.addDevice(id: "box-a")
        let file = (0..<700_000).map { _ in UInt8.random(in: 0...255) }
        let recorder = Recorder()
        var config = TusUploadStateMachine.Configuration()
        config.creationWithUpload = true
        let client = TusClient(transport: recorder, collectionURL: server.url + "/files/", token: Secret(a))
        let metadata = try UploadMetadata(decoding: metadata(sha: sha256Hex(file)))
        let result = try await client.upload(length: Int64(file.count), metadata: metadata, progress: .init(), checksum: .sha256,
                                             configuration: config,
                                             read: { o, n in Array(file[Int(o)..<Int(o) + n]) }, save: { _ in }, sleep: { _ in })
        guard case .uploaded = result else { Issue.record("\(result)"); return }
        let post = try #require(recorder.log.first)
        #expect(post.0 == "POST" && post.1 == config.creationChunkLimit && post.2.status == 201)
        #expect(post.2.headers.first { $0.key.lowercased() == "upload-offset" }?.value == String(config.creationChunkLimit))
        #expect(!recorder.log.contains { $0.0 == "HEAD" }, "no extra round trip")
        let clip = try #require(try await server.catalog.clips().first)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: clip.path))) == file)
        await server.stop()
    }

    /// The final PATCH arrives and the clip is filed, but its 204 is lost (the link flapped):
    /// the box asks where the upload stands and hears "complete" instead of 404, so it does
    /// not send the segment again as a second clip (a 20 MB flap test once filed 14 clips for
    /// 13 segments).
    @Test func aLostFinal204DoesNotFileTheClipTwice() async throws {
        struct LinkFlapped: Error {}
        final class LosesFinalAnswer: TusTransport, @unchecked Sendable {
            let inner = HTTPTransport()
            let lock = NSLock()
            var methods: [String] = []
            var lost = false
            func perform(_ request: TusRequest) async throws -> TusResponse {
                let r = try await inner.perform(request)
                let loseIt = lock.withLock { () -> Bool in
                    methods.append(request.method)
                    let final = request.method == "PATCH" && r.status == 204 && !lost
                        && r.headers.first { $0.key.lowercased() == "upload-offset" }?.value == "300000"
                    if final { lost = true }
                    return final
                }
                if loseIt { throw LinkFlapped() }
                return r
            }
        }
        let server = try await RunningServer.start()
        let a = try await server.catalog.addDevice(id: "box-a")
        let file = (0..<300_000).map { _ in UInt8.random(in: 0...255) }
        let transport = LosesFinalAnswer()
        var config = TusUploadStateMachine.Configuration()
        config.creationWithUpload = false
        let client = TusClient(transport: transport, collectionURL: server.url + "/files/", token: Secret(a))
        let result = try await client.upload(length: Int64(file.count), metadata: try UploadMetadata(decoding: metadata(sha: sha256Hex(file))),
                                             progress: .init(), checksum: .sha256, configuration: config,
                                             read: { o, n in Array(file[Int(o)..<Int(o) + n]) }, save: { _ in }, sleep: { _ in })
        guard case .uploaded = result else { Issue.record("\(result)"); return }
        #expect(transport.lost, "the final answer was dropped")
        #expect(transport.methods.filter { $0 == "POST" }.count == 1, "no second upload: \(transport.methods)")
        #expect(transport.methods.last == "HEAD")
        #expect(try await server.catalog.clips().count == 1)
        // A PATCH to the filed upload is told it is complete (409 with its offset), not 404.
        let location = try #require(try await server.catalog.query("SELECT upload_id FROM clip", []).first?.column("upload_id")?.string)
        let again = try await send(server, "PATCH", "/files/" + location, token: a,
                                   headers: ["Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"], body: [1])
        #expect(again.status == 409 && again.headers.first { $0.key.lowercased() == "upload-offset" }?.value == "300000")
        // Another device learns nothing of it.
        let b = try await server.catalog.addDevice(id: "box-b")
        #expect(try await send(server, "HEAD", "/files/" + location, token: b).status == 404)
        await server.stop()
    }

    /// A box that lost even its upload's address (a power cut before it saved it) uploads the
    /// same segment afresh: the commune keeps one clip. The same segment sent for another
    /// request is a clip of that request.
    @Test func theSameSegmentSentAgainIsOneClipPerRequest() async throws {
        let server = try await RunningServer.start()
        let a = try await server.catalog.addDevice(id: "box-a")
        let body = (0..<5000).map { _ in UInt8.random(in: 0...255) }
        func upload(request: String?) async throws -> Int {
            var fields = [("device", "box-a"), ("camera", "cam1"), ("start", "2026-11-29T14:00:00Z"), ("end", "2026-11-29T14:00:10Z"),
                          ("sha256", sha256Hex(body)), ("filename", "a.mp4")]
            if let request { fields.append(("request", request)) }
            let created = try await send(server, "POST", "/files/", token: a,
                                         headers: ["Upload-Length": String(body.count), "Upload-Metadata": UploadMetadata(fields).encoded])
            let location = try #require(created.headers.first { $0.key.lowercased() == "location" }?.value)
            return try await send(server, "PATCH", location, token: a,
                                  headers: ["Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"], body: body).status
        }
        #expect(try await upload(request: nil) == 204)
        #expect(try await upload(request: nil) == 204, "the copy is answered as received")
        #expect(try await server.catalog.clips().count == 1)
        let files = try FileManager.default.subpathsOfDirectory(atPath: server.data + "/box-a").filter { $0.hasSuffix(".mp4") }
        #expect(files.count == 1, "the copy's bytes are dropped: \(files)")
        #expect(try await server.catalog.bytesHeld(device: "box-a") == Int64(body.count), "the dropped copy holds no quota")
        let r = try await server.catalog.addRequest(device: "box-a", camera: "cam1", from: t0, to: t0 + 10, reason: nil)
        #expect(try await upload(request: r.id) == 204)
        #expect(try await server.catalog.clips().map(\.request) == [nil, r.id])
        await server.stop()
    }

    /// A device over its storage quota gets 507 with what to do; the box retries later (5xx).
    @Test func deviceQuotaIsEnforced() async throws {
        let server = try await RunningServer.start(deviceQuotaBytes: 1000)
        let a = try await server.catalog.addDevice(id: "box-a")
        let body = [UInt8](repeating: 7, count: 600)
        let create = ["Upload-Length": "600", "Upload-Metadata": metadata(sha: sha256Hex(body))]
        #expect(try await send(server, "POST", "/files/", token: a, headers: create).status == 201)
        let over = try await send(server, "POST", "/files/", token: a, headers: create)
        #expect(over.status == 507 && String(decoding: over.body, as: UTF8.self).contains("device_quota_bytes"))
        var machine = TusUploadStateMachine(length: 600, metadata: try UploadMetadata(decoding: metadata(sha: sha256Hex(body))))
        let action = machine.next()
        machine.handle(action, .response(status: 507, headers: [:], seconds: 0.1))
        guard case .wait = machine.next() else { Issue.record("the box should wait and retry, not give up"); return }
        await server.stop()
    }
}
