import AsyncHTTPClient
import Foundation
import Hostile
import NIOCore
import PropertyBased
import Testing
import Wire
@testable import Commune
@testable import Desk

/// Issue 22, what a signed-in officer, a stranger at the sign-in page, or one person behind the
/// commune's TLS proxy could do to the desk: none of it crashes it, buries the audit log, or
/// locks the right officer out.
@Suite(.serialized) struct HostileOfficerTests {
    static let password = "mat-khau-dai-1"

    static func signedIn(_ server: DeskServer, _ name: String = "nguyenvana") async throws -> Browser {
        try await server.addOperator(name, password: password)
        let browser = Browser(server.url)
        #expect(try await browser.signIn(name, password).status == 303)
        return browser
    }

    /// `from_ms` −2^63 and `to_ms` 2^63−1 trapped the server; now they are a bad date (400),
    /// and so is every millisecond outside years 0001–9999.
    @Test func extremeMillisecondsInTheEvidenceFormAreABadDate() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        _ = try await server.catalog.addDevice(id: "box-a")
        let browser = try await Self.signedIn(server)
        let csrf = try #require(Browser.field("csrf", in: try await browser.request(.GET, "/boxes/box-a/play").body))
        let issue = try await browser.request(.POST, "/boxes/box-a/evidence", form: ["csrf": csrf, "from_ms": "\(Int64.min)", "to_ms": "\(Int64.max)"])
        #expect(issue.status == 400)
        await propertyCheck(count: 100, input: HostileGen.int64, HostileGen.int64) { a, b in
            let r = try await browser.request(.POST, "/boxes/box-a/evidence", form: ["csrf": csrf, "from_ms": "\(a)", "to_ms": "\(b)"])
            #expect(r.status == 400, "\(a) \(b) → \(r.status) (no clips: never a package, never a crash)")
        }
        #expect(try await browser.request(.GET, "/boxes").status == 200)
    }

    /// Names made from a 64-character device and camera stay plain names (a package for a
    /// 25-character device was made and audited, then its page was 404).
    @Test func packageNamesFitWhateverTheDevicesName() {
        let now = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!
        for length in [1, 22, 23, 24, 25, 43, 44, 63, 64] {
            let device = String(repeating: "d", count: length), camera = String(repeating: "c", count: 64)
            for r in [FootageRange(device: device, from: now, to: now + 60),
                      FootageRange(device: device, from: now, to: now + 60, request: "req-0123456789ab")] {
                let (name, stem) = Desk.packageNames(r, camera: camera, at: now)
                #expect(PlainName.isValid(name), "\(length): \(name)")
                for ending in [".mp4", "-part20000.mp4", ".manifest.json", ".bundle.zip", ".proof"] {
                    #expect(PlainName.isValid(stem + ending), "\(length): \(stem + ending)")
                }
                #expect(Desk.packageNames(FootageRange(device: device + "x", from: now, to: now + 60), camera: camera, at: now).name != name || length >= 64,
                        "two devices that share a prefix get two packages")
            }
        }
    }

    /// The operator API and `commune request` are audited under who acted (they wrote no row;
    /// narrowing was audited with no operator).
    @Test func theAPIIsAuditedUnderTheOperatorsName() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        _ = try await server.catalog.addDevice(id: "box-a")
        let token = try await server.catalog.addOperator(name: "api-officer")
        func post(_ path: String, _ body: String) async throws -> Int {
            var r = HTTPClientRequest(url: server.url + path)
            r.method = .POST
            r.headers.add(name: "authorization", value: "Bearer " + token)
            r.body = .bytes(ByteBuffer(string: body))
            let response = try await Browser.client.execute(r, timeout: .seconds(30))
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            if path == "/api/v1/requests", let id = text.split(separator: "\"").drop(while: { $0 != "id" }).dropFirst(2).first { made = String(id) }
            return Int(response.status.code)
        }
        var made = ""
        #expect(try await post("/api/v1/requests", #"{"device":"box-a","from":"2026-12-03T09:00:00Z","to":"2026-12-03T09:10:00Z","reason":"VV-1"}"#) == 201)
        #expect(try await post("/api/v1/requests", #"{"device":"box-a","from":"2026-11-01T09:00:00Z","to":"2026-12-03T09:10:00Z"}"#) == 400,
                "over 31 days: what no box would take")
        #expect(try await post("/api/v1/requests/\(made)/narrow", #"{"from":"2026-12-03T09:02:00Z","to":"2026-12-03T09:04:00Z"}"#) == 200)
        let log = try await server.catalog.auditLog()
        #expect(log.map(\.action) == ["request narrowed", "request"] && log.allSatisfy { $0.operator == "api-officer" && $0.address == "api" }, "\(log)")
    }

    /// 200 throttled sign-ins make one row with its count, not 200 rows; the officers' own
    /// actions stay on the first page (and alone with "officers only"); the CSV holds everything.
    @Test func throttledSignInsCannotBuryTheAuditLog() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("chief", password: Self.password, chief: true)
        let chief = Browser(server.url)
        #expect(try await chief.signIn("chief", Self.password).status == 303)
        let stranger = Browser(server.url)
        for _ in 0..<200 { _ = try await stranger.signIn("chief", "guess") }
        let rows = try await server.catalog.auditLog(limit: 10_000)
        let throttled = rows.filter { $0.action == "sign-in throttled" }, refused = rows.filter { $0.action == "sign-in refused" }
        #expect(throttled.count == 1 && throttled[0].count == 200 - SignInThrottle.maxFailures, "\(throttled)")
        #expect(refused.count == 1 && refused[0].count == SignInThrottle.maxFailures, "\(refused)")
        // A spray of many names from many addresses: at most a window's bound of rows, and one.
        for n in 0..<(Catalog.AuditNoise.maxRowsPerWindow + 50) {
            try await server.catalog.auditNoise(address: "10.0.\(n / 250).\(n % 250)", action: "sign-in refused", detail: "name-\(n)")
        }
        #expect(try await server.catalog.auditLog(limit: 10_000).filter { $0.action == "sign-in refused" }.count == Catalog.AuditNoise.maxRowsPerWindow + 1)
        let page = try await chief.request(.GET, "/audit?only=officers")
        #expect(page.status == 200 && page.body.contains(">chief<") && !page.body.contains("10.0.0.1"), "officers' actions alone")
        let csv = try await chief.request(.GET, "/audit.csv")
        #expect(csv.status == 200 && csv.body.contains("\"name-0\"") && csv.body.contains("\"name-98\"") && csv.body.contains(Catalog.AuditNoise.sprayDetail)
                && csv.body.contains("\"audit exported\""), "the whole log")
    }

    /// Behind a trusted proxy the client is the address it names; one stranger locks out only
    /// themselves, and guessing an officer's password does not lock that officer's own browser out.
    @Test func oneStrangerCannotLockOfficersOut() async throws {
        let server = try await DeskServer.start(trustedProxies: ["127.0.0.1"])
        defer { Task { await server.stop() } }
        let officer = try await Self.signedIn(server)   // this browser is now known for nguyenvana
        #expect(officer.cookies[Desk.browserCookie] != nil)
        _ = try await officer.request(.POST, "/sign-out", form: ["csrf": Browser.field("csrf", in: try await officer.request(.GET, "/boxes").body) ?? ""])
        let stranger = Browser(server.url)
        for _ in 0..<30 {
            _ = try await stranger.request(.GET, "/sign-in", headers: ["x-forwarded-for": "10.9.9.9"])
            let csrf = Browser.field("csrf", in: try await stranger.request(.GET, "/sign-in").body) ?? ""
            _ = try await stranger.request(.POST, "/sign-in", form: ["name": "nguyenvana", "password": "guess", "csrf": csrf],
                                           headers: ["x-forwarded-for": "192.0.2.1, 10.9.9.9"])
        }
        let refused = try await server.catalog.auditLog(limit: 100).filter { $0.action.hasPrefix("sign-in") && $0.operator == nil }
        #expect(refused.allSatisfy { $0.address == "10.9.9.9" }, "the address the proxy saw, not the proxy's: \(refused.map(\.address))")
        // The officer, from their own browser behind the same proxy, with the right password.
        let form = try await officer.request(.GET, "/sign-in")
        let back = try await officer.request(.POST, "/sign-in", form: ["name": "nguyenvana", "password": Self.password,
                                                                        "csrf": Browser.field("csrf", in: form.body) ?? ""],
                                             headers: ["x-forwarded-for": "10.0.0.7"])
        #expect(back.status == 303 && back.location == "/boxes", "the right password still signs in: \(back.status)")
        // A browser never used by that officer is held back for the window, right password or not.
        let fresh = Browser(server.url)
        #expect(try await fresh.signIn("nguyenvana", Self.password).status == 429)
        // The header from anyone but the trusted proxy is not believed.
        #expect(Desk.clientAddress(peer: "10.1.1.1", forwardedFor: ["1.2.3.4"], trusted: ["127.0.0.1"]) == "10.1.1.1")
        #expect(Desk.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.2.3.4, 127.0.0.1"], trusted: ["127.0.0.1"]) == "1.2.3.4")
        #expect(Desk.clientAddress(peer: "127.0.0.1", forwardedFor: [], trusted: ["127.0.0.1"]) == "127.0.0.1")
    }

    /// bcrypt reads to the first NUL and 72 bytes: such passwords are refused when set, never
    /// match at sign-in; wrong current passwords on /password are throttled.
    @Test func passwordsBcryptWouldReadShortAreRefused() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        let browser = try await Self.signedIn(server)
        await #expect(throws: (any Error).self) { try await Desk.hashPassword("\0abcdefghijk", cost: 4) }
        await #expect(throws: (any Error).self) { try await Desk.hashPassword(String(repeating: "a", count: 73), cost: 4) }
        #expect(Desk.usablePassword(String(repeating: "ả", count: 24)) && !Desk.usablePassword(String(repeating: "ả", count: 25)), "72 bytes: at the bound")
        let other = Browser(server.url)
        #expect(try await other.signIn("nguyenvana", Self.password + "\0anything").status == 401, "a NUL and more is not the password")
        let csrf = try #require(Browser.field("csrf", in: try await browser.request(.GET, "/password").body))
        let long = try await browser.request(.POST, "/password", form: ["csrf": csrf, "current": Self.password,
                                                                        "new": String(repeating: "x", count: 80), "repeat": String(repeating: "x", count: 80)])
        #expect(long.status == 400 && long.body.contains("72"), "\(long.status)")
        var statuses: [Int] = []
        for _ in 0..<(SignInThrottle.maxFailures + 2) {
            statuses.append(try await browser.request(.POST, "/password", form: ["csrf": csrf, "current": "wrong", "new": "x", "repeat": "x"]).status)
        }
        #expect(statuses.prefix(SignInThrottle.maxFailures).allSatisfy { $0 == 401 } && statuses.suffix(2).allSatisfy { $0 == 429 }, "\(statuses)")
    }

    /// A flood of sign-ins is answered 401, 429 or 503: bcrypt has its own two threads and a
    /// bounded queue (`Desk.bcrypt`), not the pool the boxes' uploads are written on.
    @Test func aFloodOfSignInsIsBounded() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for n in 0..<30 {
                group.addTask { try await Browser(server.url).signIn("nobody-\(n)", "guess-\(n)").status }  // unknown names: bcrypt at cost 12
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { [401, 429, 503].contains($0) }, "\(statuses.sorted())")
        // The queue itself: past `maxBcryptWaiting` checks at once, the rest are told the server is busy.
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<(Desk.maxBcryptWaiting * 3) {
                group.addTask { (try? await Desk.bcrypt { usleep(100_000); return true }) ?? false }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count >= 2 && outcomes.filter { !$0 }.count >= Desk.maxBcryptWaiting, "\(outcomes.filter { $0 }.count) ran")
    }

    /// A form over 16 kB says it is too large (413), not that it expired.
    @Test func aFormTooLargeSaysSo() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        let browser = Browser(server.url)
        let r = try await browser.request(.POST, "/sign-in", form: ["name": "x", "password": String(repeating: "p", count: 20_000), "csrf": "c"])
        #expect(r.status == 413 && r.body.contains("16 kB"), "\(r.status) \(r.body.prefix(200))")
    }
}
