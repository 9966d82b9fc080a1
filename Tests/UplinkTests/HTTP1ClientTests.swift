import Foundation
import NIOCore
import Testing
@testable import Uplink

/// A loopback HTTP/1.1 peer answering each request with the bytes a script gives: what the box's
/// own client (issue 25) must make of keep-alive, early answers, big or chunked bodies, 1xx,
/// redirects and garbage. It counts the connections it accepted.
final class ScriptedPeer: @unchecked Sendable {
    struct Request { var head: String; var body: [UInt8] }
    /// The raw answer, and whether to close the connection after it.
    typealias Script = @Sendable (Request) -> (answer: [UInt8], close: Bool, readBody: Bool)

    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var connections = 0
    private var held: [Int32] = []
    var accepted: Int { lock.lock(); defer { lock.unlock() }; return connections }

    init(script: @escaping Script) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 8) == 0 else { throw UplinkError("bind/listen: \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { return }
                lock.lock(); connections += 1; held.append(c); lock.unlock()
                Thread.detachNewThread { Self.serve(c, script) }
            }
        }
    }

    static func serve(_ c: Int32, _ script: Script) {
        var buffer: [UInt8] = []
        func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(c, &chunk, chunk.count)
            guard n > 0 else { return false }
            buffer += chunk[..<n]
            return true
        }
        // At most 100 requests on one connection: every loop here is bounded.
        for _ in 0..<100 {
            var end: Int?
            while end == nil {
                end = buffer.indices.dropLast(3).first { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }
                if end == nil, !fill() { return }
            }
            let head = String(decoding: buffer[..<end!], as: UTF8.self)
            buffer.removeFirst(end! + 4)
            let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                let parts = line.split(separator: ":", maxSplits: 1)
                return parts.count == 2 && parts[0].lowercased() == "content-length" ? Int(parts[1].trimmingCharacters(in: .whitespaces)) : nil
            }.first ?? 0
            let peek = script(Request(head: head, body: []))
            if peek.readBody {
                while buffer.count < length { if !fill() { return } }
            }
            let body = Array(buffer.prefix(length))
            if peek.readBody { buffer.removeFirst(min(length, buffer.count)) }
            let (answer, close, _) = script(Request(head: head, body: body))
            var sent = 0
            while sent < answer.count {
                let n = answer[sent...].withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                sent += n
            }
            if close { shutdown(c, Int32(SHUT_RDWR)); return }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        lock.lock(); held.forEach { shutdown($0, Int32(SHUT_RDWR)); close($0) }; held = []; lock.unlock()
    }

    static func answer(_ status: String, headers: [String] = [], body: String = "") -> [UInt8] {
        Array(("HTTP/1.1 \(status)\r\n" + (headers + ["Content-Length: \(body.utf8.count)"]).map { $0 + "\r\n" }.joined() + "\r\n" + body).utf8)
    }
}

@Suite struct HTTP1ClientTests {
    /// A stall far beyond what these tests take, even beside every other suite on 2 cores (where
    /// one has waited 20 s for the concurrency pool): only the tests about it end by it.
    static func client(stall: TimeAmount = .seconds(120)) throws -> HTTP1Client {
        var c = HTTP1Client.Configuration()
        c.stall = stall
        return try HTTP1Client(configuration: c)
    }

    static func soon() -> NIODeadline { .now() + .seconds(120) }

    @Test func keepAliveReusesOneConnectionAndHostIsSent() async throws {
        let peer = try ScriptedPeer { r in
            let host = r.head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("host:") }.map(String.init) ?? "none"
            return (ScriptedPeer.answer("200 OK", body: host), false, true)
        }
        defer { peer.stop() }
        let client = try Self.client()
        for i in 0..<5 {
            let r = try await client.execute(method: "PATCH", url: "http://127.0.0.1:\(peer.port)/files/\(i)?x=1", headers: ["Tus-Resumable": "1.0.0"],
                                             body: Array(repeating: 1, count: 100_000 * i), deadline: Self.soon())
            #expect(r.status == 200)
            #expect(String(decoding: r.body, as: UTF8.self) == "Host: 127.0.0.1:\(peer.port)")
        }
        #expect(peer.accepted == 1, "five requests on one kept-alive connection")
        try await client.shutdown()
    }

    @Test func connectionCloseAndHTTP10AreNotReused() async throws {
        let peer = try ScriptedPeer { _ in (ScriptedPeer.answer("204 No Content", headers: ["Connection: close"]), false, true) }
        defer { peer.stop() }
        let client = try Self.client()
        for _ in 0..<3 {
            #expect(try await client.execute(method: "HEAD", url: "http://127.0.0.1:\(peer.port)/", headers: [:], body: [], deadline: Self.soon()).status == 204)
        }
        #expect(peer.accepted == 3)
        try await client.shutdown()
    }

    @Test func aHeadAnswerWithALengthHasNoBodyAndTheConnectionGoesOn() async throws {
        // tus answers HEAD with Upload-Offset and, often, Content-Length of the upload: no body follows.
        let peer = try ScriptedPeer { r in
            if r.head.hasPrefix("HEAD") {
                return (Array("HTTP/1.1 200 OK\r\nUpload-Offset: 42\r\nContent-Length: 1000\r\n\r\n".utf8), false, true)
            }
            return (ScriptedPeer.answer("200 OK", body: "after"), false, true)
        }
        defer { peer.stop() }
        let client = try Self.client()
        let head = try await client.execute(method: "HEAD", url: "http://127.0.0.1:\(peer.port)/f", headers: [:], body: [], deadline: Self.soon())
        #expect(head.status == 200 && head.headers.contains { $0.name == "Upload-Offset" && $0.value == "42" } && head.body.isEmpty)
        let next = try await client.execute(method: "GET", url: "http://127.0.0.1:\(peer.port)/g", headers: [:], body: [], deadline: Self.soon())
        #expect(String(decoding: next.body, as: UTF8.self) == "after" && peer.accepted == 1)
        try await client.shutdown()
    }

    @Test func bodiesBeyondTheBoundAreDroppedAtTheBoundAndChunkedOnesAreRead() async throws {
        let bound = HTTP1Client.Configuration().maxBodyBytes
        let peer = try ScriptedPeer { r in
            if r.head.contains("/exact") { return (ScriptedPeer.answer("200 OK", body: String(repeating: "a", count: bound)), false, true) }
            if r.head.contains("/over") { return (ScriptedPeer.answer("200 OK", body: String(repeating: "a", count: bound + 1)), false, true) }
            return (Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".utf8), false, true)
        }
        defer { peer.stop() }
        let client = try Self.client()
        #expect(try await client.execute(method: "GET", url: "http://127.0.0.1:\(peer.port)/exact", headers: [:], body: [], deadline: Self.soon()).body.count == bound)
        #expect(try await client.execute(method: "GET", url: "http://127.0.0.1:\(peer.port)/over", headers: [:], body: [], deadline: Self.soon()).body.isEmpty)
        #expect(peer.accepted == 1)
        let chunked = try await client.execute(method: "GET", url: "http://127.0.0.1:\(peer.port)/chunked", headers: [:], body: [], deadline: Self.soon())
        #expect(String(decoding: chunked.body, as: UTF8.self) == "abcde")
        #expect(peer.accepted == 2, "the connection that carried too big a body is not used again")
        try await client.shutdown()
    }

    @Test func anEarlyAnswerBeforeTheBodyIsTheResult() async throws {
        // A server refusing a big PATCH at once (413, 460) and closing: the box gets that answer.
        let peer = try ScriptedPeer { _ in (ScriptedPeer.answer("413 Content Too Large", headers: ["Connection: close"]), true, false) }
        defer { peer.stop() }
        let client = try Self.client()
        let r = try await client.execute(method: "PATCH", url: "http://127.0.0.1:\(peer.port)/files/1", headers: [:],
                                         body: Array(repeating: 0, count: 32 << 20), deadline: Self.soon())
        #expect(r.status == 413)
        try await client.shutdown()
    }

    @Test func redirectsAreAnswersAndInterimAnswersAreSkipped() async throws {
        let peer = try ScriptedPeer { r in
            if r.head.contains("/moved") { return (ScriptedPeer.answer("307 Temporary Redirect", headers: ["Location: http://10.0.0.1/steal"]), false, true) }
            return (Array("HTTP/1.1 100 Continue\r\n\r\n".utf8) + ScriptedPeer.answer("201 Created", body: "ok"), false, true)
        }
        defer { peer.stop() }
        let client = try Self.client()
        let moved = try await client.execute(method: "POST", url: "http://127.0.0.1:\(peer.port)/moved", headers: [:], body: [], deadline: Self.soon())
        #expect(moved.status == 307 && moved.headers.contains { $0.name == "Location" })
        let created = try await client.execute(method: "POST", url: "http://127.0.0.1:\(peer.port)/new", headers: [:], body: [1], deadline: Self.soon())
        #expect(created.status == 201 && created.body == Array("ok".utf8))
        try await client.shutdown()
    }

    @Test func garbageAClosedPeerAndADeadlineAreErrorsNotHangs() async throws {
        let garbage = try ScriptedPeer { _ in (Array("HTTP/9 banana\r\n\r\n".utf8), true, true) }
        defer { garbage.stop() }
        let silentClose = try ScriptedPeer { _ in ([], true, true) }
        defer { silentClose.stop() }
        let slow = try ScriptedPeer { _ in
            Thread.sleep(forTimeInterval: 0.2)
            return (Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8), false, true)
        }
        defer { slow.stop() }
        let client = try Self.client()
        await #expect(throws: (any Error).self) {
            _ = try await client.execute(method: "GET", url: "http://127.0.0.1:\(garbage.port)/", headers: [:], body: [], deadline: Self.soon())
        }
        await #expect(throws: HTTP1Error.self) {
            _ = try await client.execute(method: "GET", url: "http://127.0.0.1:\(silentClose.port)/", headers: [:], body: [], deadline: Self.soon())
        }
        let started = ContinuousClock.now
        do {
            _ = try await client.execute(method: "GET", url: "http://127.0.0.1:\(slow.port)/", headers: [:], body: [], deadline: .now() + .seconds(2))
            Issue.record("a body that never ends was taken")
        } catch let e as HTTP1Error {
            #expect(e.description.contains("deadline"))
        }
        #expect(ContinuousClock.now - started < .seconds(60))
        for bad in ["ftp://127.0.0.1/", "not a url", "http://", "http://127.0.0.1:0/"] {
            await #expect(throws: HTTP1Error.self, "\(bad)") {
                _ = try await client.execute(method: "GET", url: bad, headers: [:], body: [], deadline: Self.soon())
            }
        }
        try await client.shutdown()
    }

    @Test func aCancelledRequestEndsAtOnce() async throws {
        let silent = try SilentPeer()
        defer { silent.stop() }
        let client = try Self.client(stall: .seconds(300))
        let task = Task {
            try await client.execute(method: "GET", url: "http://127.0.0.1:\(silent.port)/", headers: [:], body: [], deadline: .now() + .seconds(300))
        }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) { _ = try await task.value }
        #expect(ContinuousClock.now - started < .seconds(60))
        try await client.shutdown()
    }
}
