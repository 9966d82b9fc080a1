import SystemCrypto
import Foundation
import Logging
import Synchronization
import Hostile
import Testing
import Wire
@testable import Ring
@testable import Uplink

/// Calls `trigger` before handing the `n`-th PATCH to the server (the commune narrowing a
/// request while the box uploads).
final class TriggerTransport: TusTransport, @unchecked Sendable {
    let inner: InMemoryTusServer
    let n: Int
    let trigger: @Sendable () async throws -> Void
    private let patches = Mutex(0)

    init(inner: InMemoryTusServer, onPatch n: Int, trigger: @escaping @Sendable () async throws -> Void) {
        self.inner = inner
        self.n = n
        self.trigger = trigger
    }

    func perform(_ request: TusRequest) async throws -> TusResponse {
        if request.method == "PATCH" {
            let k = patches.withLock { $0 += 1; return $0 }
            if k == n { try await trigger() }
        }
        return try await inner.perform(request)
    }
}

/// What the preview maker was asked to read.
final class PreviewCalls: @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [[String]] = []
    func add(_ paths: [String]) { lock.withLock { calls.append(paths) } }
    var all: [[String]] { lock.withLock { calls } }
}

@Suite struct PreviewUploadTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!

    /// A fake JPEG (what the scan checks: its first and last two bytes) of `n` bytes.
    static func jpeg(_ n: Int, seed: UInt8) -> [UInt8] { fakeJPEG(n, seed: seed) }

    /// Five 10-s segments from t0, a commune request for 12–38 s (segments 1–3) with a preview wanted.
    func ring() async throws -> (Ring, [Segment], Ring.Flag) {
        let root = NSTemporaryDirectory() + "preview-" + UUID().uuidString
        let ring = try await Ring.open(.init(root: root, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var segments: [Segment] = []
        for i in 0..<5 {
            let o = SegmentOrigin(camera: "cam1", start: t0 + Double(i * 10), monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
            let path = try ring.prepareSegmentPath(for: o)
            let bytes = (0..<300_000).map { _ in UInt8.random(in: 0...255) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let sha = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            segments.append(try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha, durationSeconds: 10)))
        }
        let flag = try await ring.flag(.init(camera: "cam1", from: t0 + 12, to: t0 + 38, reason: "VV-118", source: .request, requestID: "req-1"),
                                       now: t0 + 60)
        try await ring.wantPreview(flagID: flag.id, requestID: "req-1")
        try await ring.wantPreview(flagID: flag.id, requestID: "req-1")  // asked at every heartbeat: one row
        return (ring, segments, flag)
    }

    func queue(_ ring: Ring, _ transport: any TusTransport, made: PreviewCalls) -> UploadQueue {
        var c = TusUploadStateMachine.Configuration()
        c.initialChunk = 64 << 10
        c.minimumChunk = 64 << 10
        c.maximumChunk = 64 << 10
        var q = UploadQueue(ring: ring, client: TusClient(transport: transport, collectionURL: "http://box.test/files/", token: "t"),
                            device: "thaithuy-0042", checksum: .sha256, configuration: c, logger: Logger(label: "t"))
        q.makePreview = { segments, from, to in
            made.add(segments.map(\.path))
            // One picture a segment, at its start or the range's.
            return segments.enumerated().map { i, s in PreviewSheet.Picture(at: max(s.start, from), jpeg: Self.jpeg(20_000, seed: UInt8(i))) }
        }
        return q
    }

    /// The preview is made from the request's segments and sent first, in one tus upload; the
    /// commune then narrows the request to the third segment while the first uploads: that
    /// upload stops between two chunks, the third goes, the second never does, and no pin is left.
    @Test func thePreviewGoesFirstAndNarrowingStopsTheRest() async throws {
        let (ring, segments, flag) = try await ring()
        let server = InMemoryTusServer(faults: [:])
        // The preview (~60 kB) fits one 64-kB chunk; PATCH 4 is inside segment 1's upload (300 kB).
        let transport = TriggerTransport(inner: server, onPatch: 4) {
            _ = try await ring.narrow(flagID: flag.id, from: self.t0 + 31, to: self.t0 + 38)
        }
        let made = PreviewCalls()
        let report = try await queue(ring, transport, made: made).drain(sleep: { _ in })

        #expect(made.all == [segments[1...3].map { ring.path(of: $0) }], "made once, from the request's three segments")
        let posts = server.requests.filter { $0.method == "POST" }
        let first = try UploadMetadata(decoding: posts[0].headers["Upload-Metadata"]!)
        #expect(first["kind"] == "preview" && first["request"] == "req-1" && first["pictures"] == "3", "the preview is the first upload")
        #expect(first["start"] == (t0 + 12).rfc3339 && first["end"] == (t0 + 38).rfc3339)
        let sheet = try #require(server.data(of: "http://box.test/files/1"))
        let scan = PreviewSheet.scan(sheet, whole: true)
        #expect(scan.problem == nil && scan.entries.count == 3)
        #expect(scan.entries.map(\.at) == [t0 + 12, t0 + 30, t0 + 20], "coarse to fine: first, middle, then the rest")
        #expect(hex(SHA256.hash(data: sheet)) == first["sha256"])
        #expect(report.previews == [flag.id])

        #expect(report.stopped == [segments[1].id], "the upload of what the narrowed request no longer covers stopped")
        #expect(report.uploaded == [segments[3].id], "what it still covers went")
        #expect(posts.count == 3, "preview, segment 1 (stopped), segment 3: segment 2 was never started")
        #expect(try await ring.usage().pinnedBytes == 0)
        let preview = try #require(try await ring.previews([.uploaded]).first)
        #expect(preview.pictures == 3)
        #expect(!FileManager.default.fileExists(atPath: ring.previewPath(preview)!), "the preview left the card once sent")
        let narrowed = try #require(try await ring.flag(requestID: "req-1"))
        #expect(narrowed.from == t0 + 31 && narrowed.to == t0 + 38)
        await ring.close()
    }

    /// Narrowing only narrows: a range outside the flag's is refused and changes nothing; a
    /// preview of a range with nothing on the card is noted `empty`, and nothing is sent.
    @Test func narrowingIsBoundedAndAnEmptyPreviewSendsNothing() async throws {
        let (ring, segments, flag) = try await ring()
        for (from, to) in [(t0 + 11, t0 + 20), (t0 + 20, t0 + 39), (t0 + 20, t0 + 20)] {
            await #expect(throws: RingError.self) { _ = try await ring.narrow(flagID: flag.id, from: from, to: to) }
        }
        #expect(try await ring.flag(requestID: "req-1")?.from == t0 + 12)
        #expect(try await ring.stillWanted(segmentID: segments[1].id))
        _ = try await ring.narrow(flagID: flag.id, from: t0 + 12, to: t0 + 15)
        #expect(try await ring.stillWanted(segmentID: segments[1].id))
        #expect(try await !ring.stillWanted(segmentID: segments[2].id), "its pin is gone")
        // The narrowed flag is journaled: a rebuilt index keeps the narrow range.
        let replay = try await ring.replayJournals()
        #expect(replay.unreadableLines == 0)

        try await ring.keepPreview(flagID: flag.id, pictures: [])
        #expect(try await ring.previews([.empty]).map(\.flagID) == [flag.id])
        #expect(try await !ring.hasPendingPreviews())
        await ring.close()
    }
}
