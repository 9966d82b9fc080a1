import Foundation
import Testing
import Wire
@testable import Uplink

/// A TCP listener on loopback that accepts connections and then says nothing and reads
/// nothing: a server killed behind a proxy, or a NAT that forgot the flow, as the box sees it.
final class SilentPeer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private var held: [Int32] = []
    private let lock = NSLock()

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw UplinkError("socket: \(errno)") }
        var small: Int32 = 4096   // a small receive window: a big body stalls at once
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw UplinkError("bind/listen: \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let listener = fd
        Thread.detachNewThread { [weak self] in
            while true {
                let c = accept(listener, nil, nil)
                guard c >= 0 else { return }
                guard let self else { close(c); return }
                self.lock.lock(); self.held.append(c); self.lock.unlock()
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        lock.lock(); held.forEach { close($0) }; held = []; lock.unlock()
    }
}

/// The box's requests give up on a peer that went silent after `stall` without a byte moving,
/// long before the whole-request deadline (found when a commune killed behind a proxy left an
/// upload hanging for minutes while the heartbeat already said the commune was back).
@Suite struct StalledPeerTests {
    func attempt(bodyBytes: Int) async throws -> (error: String?, seconds: Double) {
        let peer = try SilentPeer()
        defer { peer.stop() }
        let client = try HTTPTransport.makeClient(caFile: nil, stall: .seconds(1))
        // A whole-request deadline of minutes: only the stall timer can end this in seconds.
        let transport = HTTPTransport(client: client, baseTimeoutSeconds: 300)
        let started = ContinuousClock.now
        var failure: String?
        do {
            _ = try await transport.perform(TusRequest(method: "PATCH", url: "http://127.0.0.1:\(peer.port)/files/1",
                                                       headers: [Tus.Header.resumable: Tus.version],
                                                       body: [UInt8](repeating: 7, count: bodyBytes)))
        } catch {
            failure = String(describing: error)
        }
        try await client.shutdown()
        let d = ContinuousClock.now - started
        return (failure, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }

    /// What tells the stall from the 300 s deadline. Alone these take ~1 s; beside every other
    /// suite on 2 cores (the fuzz targets start at the same moment) they have taken 20 s, so a
    /// bound of 20 failed by 0.07 s while still showing nothing but the stall at work.
    static let wellBeforeTheDeadline = 100.0

    @Test func aPeerThatTakesTheRequestButNeverAnswersIsDroppedAfterTheStall() async throws {
        let (error, seconds) = try await attempt(bodyBytes: 1024)
        #expect(error != nil, "a silent peer is an error")
        #expect(seconds < Self.wellBeforeTheDeadline, "given up after the 1 s stall, not the 300 s deadline: \(seconds) s, \(error ?? "")")
    }

    @Test func aPeerThatStopsReadingTheBodyIsDroppedAfterTheStall() async throws {
        let (error, seconds) = try await attempt(bodyBytes: 16 << 20)
        #expect(error != nil, "a peer that stops reading is an error")
        #expect(seconds < Self.wellBeforeTheDeadline, "given up after the 1 s stall, not the 300 s deadline: \(seconds) s, \(error ?? "")")
    }
}
