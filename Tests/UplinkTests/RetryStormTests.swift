import SystemCrypto
import Foundation
import Logging
import Synchronization
import Testing
import Wire
@testable import Ring
@testable import Uplink

/// A tus server that checks each whole file's SHA-256 against its metadata on the last chunk
/// (as the commune does) and answers 410 when it differs, or answers every PATCH 404.
final class StrictServer: TusTransport, @unchecked Sendable {
    let patch404: Bool
    let state = Mutex<(uploads: [String: (length: Int, sha: String, data: [UInt8])], requests: [TusRequest], done: [String])>(([:], [], []))
    init(patch404: Bool = false) { self.patch404 = patch404 }

    func perform(_ request: TusRequest) async throws -> TusResponse {
        try state.withLock { s in
            s.requests.append(request)
            let path = request.url.replacingOccurrences(of: "http://box.test", with: "")
            switch request.method {
            case "POST":
                let meta = try UploadMetadata(decoding: request.headers["Upload-Metadata"] ?? "")
                let id = "/files/\(s.requests.count)"
                s.uploads[id] = (Int(request.headers["Upload-Length"]!)!, meta["sha256"] ?? "", [])
                return TusResponse(status: 201, headers: ["Location": id])
            case "HEAD":
                guard let u = s.uploads[path] else { return TusResponse(status: 404) }
                return TusResponse(status: 200, headers: ["Upload-Offset": String(u.data.count)])
            case "PATCH":
                if patch404 { return TusResponse(status: 404) }
                guard var u = s.uploads[path] else { return TusResponse(status: 404) }
                u.data += request.body
                if u.data.count == u.length {
                    s.uploads[path] = nil
                    let sha = SHA256.hash(data: u.data).map { String(format: "%02x", $0) }.joined()
                    guard sha == u.sha else { return TusResponse(status: 410) }
                    s.done.append(u.sha)
                    return TusResponse(status: 204, headers: ["Upload-Offset": String(u.data.count)])
                }
                s.uploads[path] = u
                return TusResponse(status: 204, headers: ["Upload-Offset": String(u.data.count)])
            default:
                return TusResponse(status: 405)
            }
        }
    }
    var requests: [TusRequest] { state.withLock { $0.requests } }
    var delivered: [String] { state.withLock { $0.done } }
}

/// Issue 11, item 12.
@Suite struct RetryStormTests {
    func queue(_ ring: Ring, _ server: any TusTransport) -> UploadQueue {
        UploadQueue(ring: ring, client: TusClient(transport: server, collectionURL: "http://box.test/files/", token: "t"),
                    device: "d", checksum: nil, logger: Logger(label: "t"))
    }

    @Test func aServerAnsweringEveryPatch404IsRetriedWithBackoffAndGivenUp() async throws {
        let server = StrictServer(patch404: true)
        let waits = Mutex<[Double]>([])
        let client = TusClient(transport: server, collectionURL: "http://box.test/files/", token: nil)
        let result = try await client.upload(length: 300_000, metadata: UploadMetadata([("sha256", "x")]), progress: .init(), checksum: nil,
                                             read: { _, n in [UInt8](repeating: 1, count: n) }, save: { _ in },
                                             sleep: { s in waits.withLock { $0.append(s) } })
        guard case .failed(_, let kind) = result else { Issue.record("\(result)"); return }
        #expect(kind == .unavailable)
        let patches = server.requests.filter { $0.method == "PATCH" }.count
        #expect(patches <= 51, "\(patches) PATCHes")
        let waited = waits.withLock { $0 }
        #expect(waited.count >= patches - 1 && waited.reduce(0, +) > 600, "backs off: \(waited.prefix(8))… total \(waited.reduce(0, +)) s")
    }

    /// Issue 22: a flagged segment that rotted on the card is not quarantined unsent (its intact
    /// fragments are still evidence): the queue moves on, then it goes again as it is, declared
    /// damaged with the SHA-256 of its bytes now beside the one recorded, and only once
    /// delivered leaves the ring for quarantine.
    @Test func aBitRottedSegmentIsSentAsDamagedThenQuarantined() async throws {
        let (ring, segments, _) = try await UploadQueueTests().ring()
        // Segment 1 rots on the card after its hash was recorded.
        let victim = ring.path(of: segments[1])
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: victim))
        try h.seek(toOffset: 1000)
        try h.write(contentsOf: Data([0xFF, 0x00, 0xFF, 0x00]))
        try h.close()
        let rotten = SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: victim))).map { String(format: "%02x", $0) }.joined()
        let server = StrictServer()
        let q = queue(ring, server)
        let report = try await q.drain(sleep: { _ in })
        #expect(report.uploaded == [segments[2].id, segments[3].id], "the rest of the queue moved")
        var posts = server.requests.filter { $0.method == "POST" }.count
        #expect(posts <= 4, "\(posts) creations: the rotten file went at most twice, not 951 times")
        #expect(try await ring.quarantined().isEmpty, "not quarantined before it is delivered")
        let waiting = try await ring.uploadQueue()
        #expect(waiting.map(\.segment.id) == [segments[1].id] && waiting.first?.damagedSHA256 == rotten && waiting.first?.state.url == nil,
                "it waits, marked damaged, to start again")
        let meta = try #require(waiting.first.map { q.metadata(for: $0) })
        #expect(meta["damaged"] == "card" && meta["sha256"] == rotten && meta["recorded_sha256"] == segments[1].sha256)

        let again = try await q.drain(sleep: { _ in })
        #expect(again.uploaded == [segments[1].id])
        #expect(server.delivered == [segments[2].sha256, segments[3].sha256, rotten], "delivered as it is")
        posts = server.requests.filter { $0.method == "POST" }.count
        #expect(posts <= 5)
        #expect(try await ring.quarantined().count == 1, "then kept, untouched, in quarantine")
        let left = try await ring.uploadQueue()
        let pending = try await ring.hasPendingUploads()
        #expect(left.isEmpty && !pending)
        await ring.close()
    }

    @Test func aFileTheServerKeepsRefusingWaitsItsTurn() async throws {
        let (ring, segments, _) = try await UploadQueueTests().ring()
        // The server refuses every whole file (say its storage corrupts): the card's copy is fine.
        final class Refusing: TusTransport, @unchecked Sendable {
            let inner = StrictServer()
            func perform(_ r: TusRequest) async throws -> TusResponse {
                var r = r
                if r.method == "POST" { r.headers["Upload-Metadata"] = UploadMetadata([("sha256", "00")]).encoded }
                return try await inner.perform(r)
            }
        }
        let server = Refusing()
        let report = try await queue(ring, server).drain(sleep: { _ in })
        #expect(report.failed.count == 3 && report.uploaded.isEmpty)
        #expect(try await ring.quarantined().isEmpty, "the card's copy is intact: not quarantined")
        let pendingNow = try await ring.hasPendingUploads()
        #expect(!pendingNow, "each waits its backoff")
        #expect(try await ring.hasPendingUploads(now: .now() + 7200))
        let queued = try await ring.uploadQueue(now: .now() + 7200)
        #expect(queued.map(\.segment.id) == segments[1...3].map(\.id) && queued.allSatisfy { $0.state.attempts >= 1 })
        #expect(queued.first?.state.lastError?.hasPrefix("data_loss") == true)
        await ring.close()
    }
}
