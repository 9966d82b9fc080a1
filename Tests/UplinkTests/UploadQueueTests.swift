import SystemCrypto
import Foundation
import Logging
import Synchronization
import Testing
import Wire
@testable import Ring
@testable import Uplink

@Suite struct UploadQueueTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!

    /// A ring with five 10-s segments of random bytes from t0; the middle three flagged.
    func ring() async throws -> (Ring, [Segment], [[UInt8]]) {
        let root = NSTemporaryDirectory() + "uplink-" + UUID().uuidString
        let ring = try await Ring.open(.init(root: root, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var segments: [Segment] = [], contents: [[UInt8]] = []
        for i in 0..<5 {
            let o = SegmentOrigin(camera: "cam1", start: t0 + Double(i * 10), monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
            let path = try ring.prepareSegmentPath(for: o)
            let bytes = (0..<(300_000 + i * 1000)).map { _ in UInt8.random(in: 0...255) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let sha = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            segments.append(try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha, durationSeconds: 10)))
            contents.append(bytes)
        }
        _ = try await ring.flag(.init(camera: "cam1", from: t0 + 12, to: t0 + 38, reason: "accident QL37B"), now: t0 + 60)
        return (ring, segments, contents)
    }

    func queue(_ ring: Ring, _ server: InMemoryTusServer) -> UploadQueue {
        var c = TusUploadStateMachine.Configuration()
        c.initialChunk = 64 << 10
        c.minimumChunk = 64 << 10
        c.maximumChunk = 128 << 10
        return UploadQueue(ring: ring, client: TusClient(transport: server, collectionURL: "http://box.test/files/", token: "t"),
                           device: "thaithuy-0042", checksum: .sha256, configuration: c, logger: Logger(label: "t"))
    }

    @Test func flaggedSegmentsArriveIdenticalAndPinsAreReleased() async throws {
        let (ring, segments, contents) = try await ring()
        #expect(try await ring.usage().pinnedBytes == segments[1...3].reduce(0) { $0 + $1.bytes })
        let server = InMemoryTusServer(faults: [4: .dropMidChunk, 9: .status(503), 15: .status(409)])
        let report = try await queue(ring, server).drain(sleep: { _ in })
        #expect(report.uploaded == segments[1...3].map(\.id), "oldest first, only the flagged ones")
        #expect(report.failed.isEmpty)
        for (i, n) in [1, 2, 3].enumerated() {
            let url = "http://box.test/files/\(i + 1)"
            #expect(server.data(of: url) == contents[n], "segment \(n) arrives byte-identical")
        }
        #expect(server.created == 3, "three files, none twice")
        let posts = server.requests.filter { $0.method == "POST" }
        let meta = try UploadMetadata(decoding: posts[0].headers["Upload-Metadata"]!)
        #expect(meta["device"] == "thaithuy-0042" && meta["camera"] == "cam1" && meta["reason"] == "accident QL37B")
        #expect(meta["start"] == segments[1].start.rfc3339 && meta["end"] == segments[1].end.rfc3339)
        #expect(meta["sha256"] == segments[1].sha256 && meta["filename"] == String(segments[1].path.split(separator: "/").last!))
        let after = try await ring.segments()
        #expect(after.filter(\.uploaded).map(\.id) == segments[1...3].map(\.id))
        #expect(try await ring.usage().pinnedBytes == 0, "pins released once acknowledged")
        #expect(try await ring.uploadQueue().isEmpty)
        await ring.close()
    }

    /// The box dies mid-upload; after the "reboot" the upload resumes from the server's offset.
    @Test func rebootResumesFromSavedProgress() async throws {
        let (ring, segments, contents) = try await ring()
        let server = InMemoryTusServer(faults: [:])
        let dying = UploadQueue(ring: ring, client: TusClient(transport: CountingTransport(inner: server, limit: 2),
                                                              collectionURL: "http://box.test/files/", token: nil),
                                device: "d", checksum: nil, logger: Logger(label: "t"))
        _ = try? await dying.drain(sleep: { _ in })
        let saved = try await ring.uploadQueue().first
        #expect(saved?.segment.id == segments[1].id)
        #expect(saved?.state.url == "http://box.test/files/1" && (saved?.state.offset ?? 0) > 0, "progress is in the index")
        let before = server.requests.count
        let report = try await queue(ring, server).drain(sleep: { _ in })
        #expect(server.requests[before].method == "HEAD", "resume asks the server first")
        #expect(report.uploaded.count == 3 && report.resentBytes == 0)
        #expect(server.data(of: "http://box.test/files/1") == contents[1])
        #expect(server.created == 3)
        await ring.close()
    }
}

/// Passes `limit` requests through, then fails every request as if the box lost power.
final class CountingTransport: TusTransport, Sendable {
    let inner: InMemoryTusServer
    let limit: Int
    private let count = Mutex(0)

    init(inner: InMemoryTusServer, limit: Int) {
        self.inner = inner
        self.limit = limit
    }

    func perform(_ request: TusRequest) async throws -> TusResponse {
        let n = count.withLock { $0 += 1; return $0 }
        if n > limit { throw CancellationError() }
        return try await inner.perform(request)
    }
}
