import AsyncHTTPClient
import Foundation
import Hostile
import NIOCore
import PropertyBased
import Testing
import Wire
@testable import Commune
@testable import Desk

/// Issue 22: no number a box sends can crash the desk. Each number of a heartbeat's health is
/// bounded where the heartbeat is decoded (`Bounds`), and what the desk draws saturates; the
/// property drives decoder → catalog → box list and request page with the values of `HostileGen`.
@Suite(.serialized) struct HostileNumbersTests {
    static let numberFields = ["ring_bytes", "budget_bytes", "free_bytes", "pinned_bytes", "pinned_cap_bytes", "queued_segments",
                               "damaged_segments", "heartbeat_seconds", "upload_bytes_per_second"]

    /// A heartbeat whose health numbers are the texts given (by field name), the rest ordinary.
    static func heartbeat(device: String, _ numbers: [String: String]) -> String {
        let fields = numberFields.map { "\"\($0)\":\(numbers[$0] ?? "1")" }.joined(separator: ",")
        return """
            {"device":"\(device)","requests":[],"health":{"recording":"recording","clock_synchronized":true,"version":"t",
            "sent_at":"2026-12-03T10:00:00Z","oldest":"2026-12-03T09:00:00Z","newest":"2026-12-03T10:00:00Z",\(fields)}}
            """
    }

    struct Box {
        let server: DeskServer
        let browser: Browser
        let token: String
        let request: Catalog.Request

        func post(_ body: String) async throws -> Int {
            var r = HTTPClientRequest(url: server.url + Heartbeat.path)
            r.method = .POST
            r.headers.add(name: "authorization", value: "Bearer " + token)
            r.headers.add(name: "content-type", value: "application/json")
            r.body = .bytes(ByteBuffer(string: body))
            let response = try await Browser.client.execute(r, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
    }

    static func box() async throws -> Box {
        let server = try await DeskServer.start()
        try await server.addOperator("nguyenvana", password: "mat-khau-dai-1")
        let token = try await server.catalog.addDevice(id: "hostile-box")
        let t = Timestamp(rfc3339: "2026-12-03T09:00:00Z")!
        let request = try await server.catalog.addRequest(device: "hostile-box", camera: nil, from: t, to: t + 600, reason: "theft")
        let browser = Browser(server.url)
        _ = try await browser.signIn("nguyenvana", "mat-khau-dai-1")
        return Box(server: server, browser: browser, token: token, request: request)
    }

    /// The cases the attack found, one by one: refused at the door when out of bounds, drawn
    /// when inside them, and the pages stay up either way.
    @Test func theHeartbeatsThatCrashedTheDeskAreRefusedOrDrawn() async throws {
        let box = try await Self.box()
        defer { Task { await box.server.stop() } }
        let refused: [[String: String]] = [
            ["upload_bytes_per_second": "1e300"], ["upload_bytes_per_second": "-1e300"],
            ["pinned_bytes": "1e17", "pinned_cap_bytes": "1"], ["pinned_cap_bytes": "4611686018427387904"],
            ["free_bytes": "4611686018427387904"], ["free_bytes": "-4611686018427387904"], ["queued_segments": "-1"],
            ["heartbeat_seconds": "0"], ["ring_bytes": "9223372036854775808"],
        ]
        for numbers in refused {
            #expect(try await box.post(Self.heartbeat(device: "hostile-box", numbers)) == 400, "\(numbers)")
            #expect(try await box.browser.request(.GET, "/boxes").status == 200)
        }
        // At the bounds: kept, and drawn without a trap.
        let top = "\(Bounds.bytes.upperBound)"
        #expect(try await box.post(Self.heartbeat(device: "hostile-box", ["ring_bytes": top, "budget_bytes": top, "free_bytes": top,
                                                                          "pinned_bytes": top, "pinned_cap_bytes": "1", "upload_bytes_per_second": "1e10"])) == 200)
        let list = try await box.browser.request(.GET, "/boxes")
        #expect(list.status == 200 && list.body.contains("hostile-box") && list.body.contains("1125,9 TB"), "the box list at 2^50 bytes")
        // A tiny rate: the request page's "time left" saturates instead of trapping.
        #expect(try await box.post(Self.heartbeat(device: "hostile-box", ["upload_bytes_per_second": "1e-300"])) == 200)
        #expect(try await box.browser.request(.GET, "/requests/" + box.request.id).status == 200)
        #expect(try await box.browser.request(.GET, "/boxes").status == 200)
    }

    /// A row stored before the bounds (or by a bound raised later) no longer crashes every
    /// view after each restart: the catalog reads it as no health at all.
    @Test func aStoredAbsurdHealthIsReadAsNone() async throws {
        let box = try await Self.box()
        defer { Task { await box.server.stop() } }
        let absurd = #"{"recording":"recording","clock_synchronized":true,"version":"t","sent_at":"2026-12-03T10:00:00Z","ring_bytes":1,"budget_bytes":1,"free_bytes":-4611686018427387904,"pinned_bytes":100000000000000000,"pinned_cap_bytes":1,"queued_segments":0,"upload_bytes_per_second":1e300}"#
        _ = try await box.server.catalog.query("UPDATE device SET health = ? WHERE id = ?", [.text(absurd), .text("hostile-box")])
        #expect(try await box.server.catalog.devices().first?.health == nil)
        #expect(try await box.browser.request(.GET, "/boxes").status == 200)
    }

    /// Property: whatever numbers a heartbeat carries, the commune answers 200 or 400 (never
    /// fails or crashes), keeps only health inside `Bounds`, and the box list and request page
    /// stay up.
    @Test func anyNumbersInAHeartbeatLeaveTheDeskUp() async throws {
        let box = try await Self.box()
        defer { Task { await box.server.stop() } }
        var accepted = 0, refused = 0
        // Each field hostile one time in three, so that both sides of the bounds are reached.
        await propertyCheck(count: 150, input: HostileGen.jsonNumber.array(of: Self.numberFields.count),
                            Gen<Int>.int(in: 0...2).array(of: Self.numberFields.count)) { numbers, picks in
            let chosen = zip(Self.numberFields, zip(numbers, picks)).filter { $0.1.1 == 0 }.map { ($0.0, $0.1.0) }
            let status = try await box.post(Self.heartbeat(device: "hostile-box", Dictionary(uniqueKeysWithValues: chosen)))
            #expect(status == 200 || status == 400, "\(chosen) → \(status)")
            if status == 200 {
                accepted += 1
                let h = try #require(try await box.server.catalog.devices().first?.health)
                for v in [h.ringBytes, h.budgetBytes, h.freeBytes, h.pinnedBytes, h.pinnedCapBytes] { #expect(Bounds.bytes.contains(v)) }
                #expect(Bounds.count.contains(h.queuedSegments) && h.uploadBytesPerSecond.map(Bounds.bytesPerSecond.contains) ?? true)
            } else {
                refused += 1
            }
            #expect(try await box.browser.request(.GET, "/boxes").status == 200)
            #expect(try await box.browser.request(.GET, "/requests/" + box.request.id).status == 200)
        }
        #expect(accepted > 0 && refused > 0, "the generator reaches both sides of the bounds (\(accepted) kept, \(refused) refused)")
    }

    /// What the desk draws saturates at every extreme, bypassing the decoder (a row from
    /// elsewhere, a bound changed later): no Double→Int trap, no `× 100` overflow.
    @Test func drawingSaturates() async {
        let local = LocalForm(timeZone: Desk.defaultTimeZone, language: .vi)
        for d in Extremes.doubles {
            _ = local.decimal(d); _ = local.rate(d); _ = local.elapsed(d)
        }
        for b in Extremes.int64 { _ = local.bytes(b); _ = local.dateTime(Timestamp(milliseconds: b)) }
        #expect(local.decimal(1e300) == "922337203685477580,7" && local.decimal(-1e300) == "-922337203685477580,8", "saturated at Int64's end")
        #expect(local.decimal(.nan) == "—" && local.decimal(-1.5) == "-1,5" && local.decimal(-0.0) == "0,0" && local.decimal(1e-300) == "0,0")
        #expect(local.elapsed(1e300).hasSuffix("ngày") && local.elapsed(-1e300) == "0 s")
        await propertyCheck(count: 300, input: HostileGen.int64.array(of: 5), HostileGen.double) { n, rate in
            var h = Heartbeat.Health(recording: "recording", version: "t", sentAt: Timestamp(milliseconds: n[0]))
            (h.budgetBytes, h.freeBytes, h.pinnedBytes, h.pinnedCapBytes) = (n[1], n[2], n[3], n[4])
            h.uploadBytesPerSecond = rate
            let device = Catalog.Device(id: "b", lastSeen: Timestamp(milliseconds: n[0]), health: h, publicKey: nil)
            let status = BoxStatus(device, now: Timestamp(milliseconds: n[1]))
            if n[4] > 0, n[3] >= n[4] { #expect(status.alarms.contains(.cardFull), "pinned \(n[3]) of a cap of \(n[4])") }
            _ = local.rate(rate)
        }
    }
}
