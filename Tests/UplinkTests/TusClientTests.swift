import SystemCrypto
import Foundation
import Synchronization
import Testing
import Wire
@testable import Uplink

/// A tus 1.0.0 server in memory that misbehaves on cue: it fails mid-chunk (keeping part of
/// the bytes, as a real server does when the connection drops), answers 409/460/404/410/5xx,
/// and lies about offsets.
final class InMemoryTusServer: TusTransport, @unchecked Sendable {
    enum Fault: Sendable { case dropMidChunk, dropMidChunkKeepNothing, status(Int), lieOffset, forget, noAnswer }
    private let lock = NSLock()
    private var uploads: [String: (length: Int64, data: [UInt8], metadata: String)] = [:]
    private var faults: [Int: Fault]  // request number → fault
    private(set) var requests: [TusRequest] = []
    private var counter = 0
    var created: Int { lock.withLock { uploads.count } }

    init(faults: [Int: Fault]) { self.faults = faults }

    func data(of url: String) -> [UInt8]? { lock.withLock { uploads[url.replacingOccurrences(of: "http://box.test", with: "")]?.data } }

    func perform(_ request: TusRequest) async throws -> TusResponse {
        try lock.withLock {
            counter += 1
            requests.append(request)
            let fault = faults[counter]
            let path = request.url.replacingOccurrences(of: "http://box.test", with: "")
            switch (request.method, fault) {
            case (_, .noAnswer?):
                throw URLError(.notConnectedToInternet)
            case (_, .status(let s)?):
                if s == 404 || s == 410 { uploads[path] = nil }
                return TusResponse(status: s)
            case ("POST", _):
                let id = "/files/\(uploads.count + 1)"
                uploads[id] = (Int64(request.headers["Upload-Length"]!)!, [], request.headers["Upload-Metadata"] ?? "")
                return TusResponse(status: 201, headers: ["Location": id])
            case ("HEAD", _):
                guard let u = uploads[path] else { return TusResponse(status: 404) }
                return TusResponse(status: 200, headers: ["Upload-Offset": String(u.data.count), "Upload-Length": String(u.length)])
            case ("PATCH", _):
                guard var u = uploads[path] else { return TusResponse(status: 404) }
                let offset = Int(request.headers["Upload-Offset"]!)!
                guard offset == u.data.count else { return TusResponse(status: 409) }
                if let c = request.headers["Upload-Checksum"] {
                    let expected = "sha256 " + Data(SHA256.hash(data: request.body)).base64EncodedString()
                    guard c == expected else { return TusResponse(status: 460) }
                }
                if case .dropMidChunkKeepNothing? = fault { throw URLError(.networkConnectionLost) }
                if case .dropMidChunk? = fault {
                    u.data += request.body.prefix(request.body.count / 2)
                    uploads[path] = u
                    throw URLError(.networkConnectionLost)
                }
                u.data += request.body
                uploads[path] = u
                if case .forget? = fault { uploads[path] = nil }
                let reported = fault.map { if case .lieOffset = $0 { u.data.count + 1000 } else { u.data.count } } ?? u.data.count
                return TusResponse(status: 204, headers: ["Upload-Offset": String(reported)])
            default:
                return TusResponse(status: 405)
            }
        }
    }
}

@Suite struct TusClientTests {
    let file: [UInt8] = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
    let metadata = UploadMetadata([("device", "box"), ("sha256", "x"), ("filename", "a.mp4")])

    func config() -> TusUploadStateMachine.Configuration {
        var c = TusUploadStateMachine.Configuration()
        c.initialChunk = 128 << 10
        c.minimumChunk = 64 << 10
        c.maximumChunk = 512 << 10
        return c
    }

    func run(_ server: InMemoryTusServer, progress: TusUploadStateMachine.Progress = .init()) async throws
        -> (TusClient.Result, [Double], TusUploadStateMachine.Progress) {
        let client = TusClient(transport: server, collectionURL: "http://box.test/files/", token: "secret")
        let waits = Mutex<[Double]>([])
        let saved = Mutex(TusUploadStateMachine.Progress())
        let bytes = file
        let result = try await client.upload(
            length: Int64(file.count), metadata: metadata, progress: progress, checksum: .sha256, configuration: config(),
            read: { offset, length in Array(bytes[Int(offset)..<Int(offset) + length]) },
            save: { p in saved.withLock { $0 = p } },
            sleep: { s in waits.withLock { $0.append(s) } })
        return (result, waits.withLock { $0 }, saved.withLock { $0 })
    }

    @Test func cleanUploadIsByteIdentical() async throws {
        let server = InMemoryTusServer(faults: [:])
        let (result, waits, _) = try await run(server)
        guard case .uploaded(let url, let resent) = result else { Issue.record("\(result)"); return }
        #expect(url == "http://box.test/files/1")
        #expect(server.data(of: url) == file)
        #expect(resent == 0 && waits.isEmpty)
        #expect(server.requests.first?.headers["Authorization"] == "Bearer secret")
        #expect(server.requests.first?.headers["Upload-Metadata"] == metadata.encoded)
        #expect(server.requests.filter { $0.method == "PATCH" }.allSatisfy { $0.headers["Upload-Checksum"]?.hasPrefix("sha256 ") == true })
        // The chunk grows on a fast link: fewer PATCHes than 3 MB / 128 KiB.
        #expect(server.requests.filter { $0.method == "PATCH" }.count < 3_000_000 / (128 << 10))
    }

    @Test func survivesEveryKindOfFault() async throws {
        let server = InMemoryTusServer(faults: [
            3: .dropMidChunk, 6: .status(409), 8: .status(460), 10: .status(503), 13: .lieOffset,
            16: .status(500), 19: .dropMidChunk,
        ])
        let (result, waits, _) = try await run(server)
        guard case .uploaded(let url, let resent) = result else { Issue.record("\(result)"); return }
        #expect(server.data(of: url) == file, "byte-identical despite the faults")
        #expect(server.created == 1, "one upload, never two files")
        #expect(waits.count == 4, "backoff after each drop and each 5xx: \(waits)")
        #expect(waits[0] <= 1 && waits[1] <= 2 && waits[2] <= 4)
        // A drop keeps the bytes the server got: the client resumes from the server's offset,
        // re-sending at most the rest of one chunk per fault.
        #expect(resent <= 512 << 10, "re-sent \(resent) bytes")
    }

    /// A long outage (no answer at all, 30 times in a row) is retried every couple of seconds,
    /// never after a long backoff: the link's return is noticed at once. 5xx still backs off.
    @Test func linkDownIsProbedOftenNotBackedOffLong() async throws {
        var faults: [Int: InMemoryTusServer.Fault] = [:]
        for n in 3...32 { faults[n] = .noAnswer }
        let server = InMemoryTusServer(faults: faults)
        let (result, waits, _) = try await run(server)
        guard case .uploaded(let url, _) = result else { Issue.record("\(result)"); return }
        #expect(server.data(of: url) == file)
        #expect(waits.count == 30 && waits.allSatisfy { $0 <= 2 }, "\(waits)")
    }

    /// A cut-off chunk halves the next only when the server kept none of it: against a server
    /// that keeps partial bodies (like the commune) a flap costs nothing, so chunks stay long.
    @Test func chunkShrinksOnlyWhenACutOffChunkIsLost() async throws {
        func patchSizes(_ fault: InMemoryTusServer.Fault) async throws -> [Int] {
            let server = InMemoryTusServer(faults: [4: fault])
            _ = try await run(server)
            return server.requests.filter { $0.method == "PATCH" }.map(\.body.count)
        }
        let kept = try await patchSizes(.dropMidChunk)
        let lost = try await patchSizes(.dropMidChunkKeepNothing)
        // Request 4 is the third PATCH (POST, PATCH, PATCH, PATCH…); look at the one after the HEAD.
        #expect(kept[3] >= kept[2], "kept: \(kept)")
        #expect(lost[3] == lost[2] / 2, "lost: \(lost)")
    }

    @Test func goneUploadIsCreatedAgain() async throws {
        let server = InMemoryTusServer(faults: [4: .status(410)])
        let (result, _, _) = try await run(server)
        guard case .uploaded(let url, _) = result else { Issue.record("\(result)"); return }
        #expect(url == "http://box.test/files/1" || url == "http://box.test/files/2")
        #expect(server.data(of: url) == file)
        #expect(server.requests.filter { $0.method == "POST" }.count == 2)
    }

    @Test func resumesAfterRebootFromTheServersOffset() async throws {
        // First run: the box dies (task cancelled) after a few chunks.
        let server = InMemoryTusServer(faults: [:])
        let client = TusClient(transport: server, collectionURL: "http://box.test/files/", token: nil)
        let saved = Mutex(TusUploadStateMachine.Progress())
        let bytes = file
        let task = Task {
            try await client.upload(length: Int64(bytes.count), metadata: metadata, progress: .init(), checksum: nil, configuration: config(),
                                    read: { o, n in
                                        if o >= 600_000 { throw CancellationError() }
                                        return Array(bytes[Int(o)..<Int(o) + n]) },
                                    save: { p in saved.withLock { $0 = p } }, sleep: { _ in })
        }
        _ = try? await task.value
        let progress = saved.withLock { $0 }
        #expect(progress.url == "http://box.test/files/1" && progress.offset > 0)
        let before = server.requests.count
        // Second run, as after a reboot: HEAD first, then on from the server's offset.
        let (result, _, _) = try await run(server, progress: progress)
        guard case .uploaded(let url, let resent) = result else { Issue.record("\(result)"); return }
        #expect(server.requests[before].method == "HEAD")
        #expect(server.data(of: url) == file && resent == 0 && server.created == 1)
    }

    @Test func refusedTokenStops() async throws {
        let server = InMemoryTusServer(faults: [1: .status(401)])
        let (result, _, _) = try await run(server)
        guard case .failed(let reason, _) = result else { Issue.record("\(result)"); return }
        #expect(reason.contains("server.token"))
    }

    @Test func locationResolution() {
        #expect(TusClient.resolve("/files/abc", against: "https://c.example:8443/files/") == "https://c.example:8443/files/abc")
        #expect(TusClient.resolve("abc", against: "https://c.example/files/") == "https://c.example/files/abc")
        #expect(TusClient.resolve("https://x/y", against: "https://c.example/files/") == "https://x/y")
    }
}
