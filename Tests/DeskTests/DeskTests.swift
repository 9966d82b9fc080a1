import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Hostile
import Testing
import Wire
@testable import Commune
@testable import Desk

/// The desk over real HTTP on loopback: a real server (Hummingbird) with the desk's routes and a
/// client that keeps its own cookies, as a browser does. Browser tests (Chromium) come on top.
struct DeskServer {
    let url: String
    let catalog: Catalog
    let data: String
    let task: Task<Void, any Error>

    static func start(session: Catalog.SessionLifetime = .init(), trustedProxies: Set<String> = []) async throws -> DeskServer {
        let data = NSTemporaryDirectory() + "desk-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let catalog = try await Catalog.open(path: data + "/catalog.sqlite", logger: Logger(label: "t"))
        let router = Router(context: CommuneRequestContext.self)
        var configuration = Desk.Configuration(secureCookies: false, session: session, bcryptCost: 4, evidenceRoot: data + "/evidence")
        configuration.trustedProxies = trustedProxies
        Desk(catalog: catalog, configuration: configuration, logger: Logger(label: "t"))
            .register(on: router)
        // The boxes' API beside the desk, as `commune serve` has it: what a box sends is what the desk draws.
        ControlEndpoint(catalog: catalog, logger: Logger(label: "t")).register(on: router)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "t"))
        let task = Task { try await app.runService() }
        var port = 0
        for await p in ports { port = p; break }
        return DeskServer(url: "http://127.0.0.1:\(port)", catalog: catalog, data: data, task: task)
    }

    func addOperator(_ name: String, password: String, oneTime: Bool = false, chief: Bool = false) async throws {
        _ = try await catalog.addOperator(name: name, chief: chief)
        try await catalog.setPassword(operator: name, bcrypt: try await Desk.hashPassword(password, cost: 4), oneTime: oneTime)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        await catalog.close()
    }
}

/// A client with a cookie jar; redirects are not followed (the tests look at them).
final class Browser: @unchecked Sendable {
    let base: String
    var cookies: [String: String] = [:]
    var language: String? = nil
    static let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))

    init(_ base: String) { self.base = base }

    struct Page {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var location: String? { headers.first(name: "location") }
    }

    func request(_ method: HTTPMethod, _ path: String, form: [String: String]? = nil, headers extra: [String: String] = [:]) async throws -> Page {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if !cookies.isEmpty { request.headers.add(name: "cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        if let language { request.headers.add(name: "accept-language", value: language) }
        for (k, v) in extra { request.headers.add(name: k, value: v) }
        if let form {
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
            let body = form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
            request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await Self.client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        for set in response.headers["set-cookie"] {
            let pair = set.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if pair.count == 2 { cookies[pair[0]] = pair[1].isEmpty ? nil : pair[1] }
        }
        return Page(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }

    /// The value of a hidden form field on a page.
    static func field(_ name: String, in page: String) -> String? {
        guard let r = page.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(page[r.upperBound...].prefix { $0 != "\"" })
    }

    func signIn(_ name: String, _ password: String) async throws -> Page {
        let form = try await request(.GET, "/sign-in")
        return try await request(.POST, "/sign-in", form: ["name": name, "password": password, "csrf": Self.field("csrf", in: form.body) ?? ""])
    }
}

@Suite(.serialized) struct DeskTests {
    @Test func everyWordIsInBothLanguagesAndVietnameseComesFirst() {
        for key in Key.allCases {
            #expect(Strings.vi[key] != nil, "no Vietnamese for \(key)")
            #expect(Strings.en[key] != nil, "no English for \(key)")
        }
        #expect(Language.preferred(acceptLanguage: nil) == .vi)
        #expect(Language.preferred(acceptLanguage: "fr-FR,fr;q=0.9") == .vi)
        #expect(Language.preferred(acceptLanguage: "en-US,en;q=0.9,vi;q=0.8") == .en)
        #expect(Language.preferred(acceptLanguage: "vi-VN,vi;q=0.9,en;q=0.8") == .vi)
    }

    @Test func signInSessionsAndWhatTheyRefuse() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("nguyenvana", password: "mat-khau-dai-1")
        let browser = Browser(server.url)

        // Not signed in: every page leads to the sign-in page, which speaks Vietnamese.
        let home = try await browser.request(.GET, "/boxes")
        #expect(home.status == 303 && home.location == "/sign-in")
        let form = try await browser.request(.GET, "/sign-in")
        #expect(form.status == 200 && form.body.contains("lang=\"vi\"") && form.body.contains("Đăng nhập"))
        #expect(form.headers.first(name: "content-security-policy")?.contains("script-src 'self'") == true)
        #expect(!form.body.contains("<script>") && !form.body.contains("style="), "no inline script or style")

        // Wrong password: refused, said plainly, audited.
        let wrong = try await browser.signIn("nguyenvana", "sai-mat-khau")
        #expect(wrong.status == 401 && wrong.body.contains("Tên hoặc mật khẩu không đúng"))
        // A form without its token (another site posting it) is refused before any password check.
        let forged = try await Browser(server.url).request(.POST, "/sign-in", form: ["name": "nguyenvana", "password": "mat-khau-dai-1", "csrf": "x"])
        #expect(forged.status == 403)

        // Right password: a session cookie, HttpOnly and SameSite=Strict, and the box list.
        let ok = try await browser.signIn("nguyenvana", "mat-khau-dai-1")
        #expect(ok.status == 303 && ok.location == "/boxes")
        let setCookie = ok.headers["set-cookie"].first { $0.hasPrefix("desk_session=") } ?? ""
        #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && !setCookie.contains("Secure"),
                "over plain HTTP a Secure cookie would never come back (HTTPS: UplinkFaultTests.footageRequestOverHTTPS): \(setCookie)")
        let boxes = try await browser.request(.GET, "/boxes")
        #expect(boxes.status == 200 && boxes.body.contains("nguyenvana"))

        // Sign-out needs the page's token; then the cookie opens nothing.
        let noToken = try await browser.request(.POST, "/sign-out", form: ["csrf": "wrong"])
        #expect(noToken.status == 403)
        let csrf = Browser.field("csrf", in: boxes.body) ?? ""
        let out = try await browser.request(.POST, "/sign-out", form: ["csrf": csrf])
        #expect(out.status == 303 && out.location == "/sign-in")
        #expect(try await browser.request(.GET, "/boxes").location == "/sign-in")

        let audit = try await server.catalog.auditLog().map(\.action)
        #expect(audit == ["sign-out", "sign-in", "sign-in refused"], "\(audit)")
    }

    @Test func guessingIsThrottledAndAnUnknownNameLooksTheSame() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("tranthib", password: "mat-khau-dai-2")
        let browser = Browser(server.url)
        for _ in 0..<SignInThrottle.maxFailures {
            #expect(try await browser.signIn("tranthib", "doan-bua").status == 401)
        }
        // Past the bound, even the right password waits out the window.
        let blocked = try await browser.signIn("tranthib", "mat-khau-dai-2")
        #expect(blocked.status == 429 && blocked.body.contains("15 phút"))
        // An unknown name gets the answer a wrong password gets.
        let unknown = try await Browser(server.url).signIn("khong-co-ai", "mat-khau-dai-2")
        #expect(unknown.status == 401 && unknown.body.contains("Tên hoặc mật khẩu không đúng"))
        #expect(try await server.catalog.auditLog().first?.action == "sign-in refused")
        // One address (an office behind one router) may fail more, but not without bound.
        let guesser = Browser(server.url)
        for i in 0..<(SignInThrottle.maxFailuresPerAddress - SignInThrottle.maxFailures - 1) {
            #expect(try await guesser.signIn("ten-\(i)", "doan-bua").status == 401)
        }
        #expect(try await guesser.signIn("ten-cuoi", "doan-bua").status == 429, "the address's bound")
    }

    @Test func aOneTimePasswordMustBeChangedFirst() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("levanc", password: "abcdefghjk23", oneTime: true)
        let browser = Browser(server.url)
        let signedIn = try await browser.signIn("levanc", "abcdefghjk23")
        #expect(signedIn.location == "/password")
        #expect(try await browser.request(.GET, "/boxes").location == "/password", "nothing else opens first")
        let page = try await browser.request(.GET, "/password")
        let csrf = Browser.field("csrf", in: page.body) ?? ""
        let short = try await browser.request(.POST, "/password", form: ["csrf": csrf, "current": "abcdefghjk23", "new": "ngan", "repeat": "ngan"])
        #expect(short.status == 400 && short.body.contains("ít nhất 10 ký tự"))
        let differ = try await browser.request(.POST, "/password", form: ["csrf": csrf, "current": "abcdefghjk23", "new": "mat-khau-moi-1", "repeat": "mat-khau-moi-2"])
        #expect(differ.status == 400)
        let done = try await browser.request(.POST, "/password", form: ["csrf": csrf, "current": "abcdefghjk23", "new": "mat-khau-moi-1", "repeat": "mat-khau-moi-1"])
        #expect(done.status == 303 && done.location == "/boxes")
        #expect(try await browser.request(.GET, "/boxes").status == 200)
        #expect(try await Browser(server.url).signIn("levanc", "abcdefghjk23").status == 401, "the one-time password is spent")
        #expect(try await Browser(server.url).signIn("levanc", "mat-khau-moi-1").location == "/boxes")
    }

    @Test func sessionsExpireAndADeviceTokenOpensNothing() async throws {
        // 5 s, not 1: beside every other suite on 2 cores, signing in and the first page have
        // taken more than a second (the session had already expired when the test looked).
        let server = try await DeskServer.start(session: .init(absoluteSeconds: 5, idleSeconds: 3600))
        defer { Task { await server.stop() } }
        try await server.addOperator("phamd", password: "mat-khau-dai-4")
        let deviceToken = try await server.catalog.addDevice(id: "box-a")
        let stranger = try await Browser(server.url).request(.GET, "/boxes", headers: ["authorization": "Bearer \(deviceToken)"])
        #expect(stranger.status == 303 && stranger.location == "/sign-in")
        let browser = Browser(server.url)
        _ = try await browser.signIn("phamd", "mat-khau-dai-4")
        #expect(try await browser.request(.GET, "/boxes").status == 200)
        try await Task.sleep(for: .milliseconds(5100))
        let expired = try await browser.request(.GET, "/boxes")
        #expect(expired.status == 401 && expired.body.contains("Phiên làm việc đã hết hạn"))
    }

    @Test func theBoxListPutsProblemsFirstAndEscapesWhatABoxSent() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("hoange", password: "mat-khau-dai-5")
        let now = Timestamp.now()
        var tokens: [String: String] = [:]
        for id in ["a-fine", "b-silent", "c-hostile"] { tokens[id] = try await server.catalog.addDevice(id: id) }
        func health(_ recording: String, error: String? = nil) -> Heartbeat.Health {
            .init(recording: recording, lastError: error, oldest: now + -86400, newest: now, ringBytes: 50_000_000_000, budgetBytes: 57_000_000_000,
                  freeBytes: 6_000_000_000, pinnedBytes: 1_000_000, pinnedCapBytes: 28_000_000_000, queuedSegments: 2, clockSynchronized: true,
                  version: "t", sentAt: now, camera: "cam1", heartbeatSeconds: 60, uploadBytesPerSecond: 250_000)
        }
        try await server.catalog.setHealth(device: "a-fine", health("recording"))
        try await server.catalog.setHealth(device: "b-silent", health("recording"))
        try await server.catalog.setHealth(device: "c-hostile", health("<script>alert(1)</script>", error: "\u{1b}]0;pwned\u{07}<img src=x onerror=alert(2)>"))
        for (id, seen) in [("a-fine", now), ("b-silent", now + -600), ("c-hostile", now)] {
            _ = try await server.catalog.device(token: tokens[id]!, now: seen)
        }
        let browser = Browser(server.url)
        _ = try await browser.signIn("hoange", "mat-khau-dai-5")
        let page = try await browser.request(.GET, "/boxes").body
        let order = ["a-fine", "b-silent", "c-hostile"].map { page.range(of: "data-device=\"\($0)\"")?.lowerBound }
        #expect(order.allSatisfy { $0 != nil })
        if let a = order[0], let b = order[1], let c = order[2] {
            #expect(b < a && c < a, "boxes with alarms come first")
        }
        #expect(page.contains("Mất liên lạc"), "a box silent for 10 min (heartbeat 60 s) is an alarm")
        #expect(!page.contains("<script>alert") && !page.contains("<img src=x"), "nothing a box sent becomes markup")
        #expect(page.contains("&lt;script&gt;") && page.contains("\\u{1b}"), "it is shown, escaped")
        #expect(page.contains("2000,0 kbit/s"), "250 kB/s in the Vietnamese form")
    }

    /// Issue 24: each box's release, slot and last update, and the rollouts with why one
    /// stopped, in Vietnamese, with what a box sent escaped.
    @Test func theBoxListShowsReleasesAndRollouts() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("hoange", password: "mat-khau-dai-5")
        for id in ["box-good", "box-back", "box-old"] { _ = try await server.catalog.addDevice(id: id) }
        let at = Timestamp(rfc3339: "2026-12-01T03:00:00Z")!
        let good = FleetUpdate.Report(release: "1.2.0", arch: "arm64", booted: "b", slots: [.init(name: "a", release: "1.0.0", state: "good"), .init(name: "b", release: "1.2.0", state: "good")],
                                      last: .init(version: "1.2.0", result: "blessed", reason: nil, at: at))
        let back = FleetUpdate.Report(release: "1.0.0", arch: "arm64", booted: "a", slots: [.init(name: "a", release: "1.0.0", state: "good"), .init(name: "b", release: nil, state: "empty")],
                                      last: .init(version: "1.1.0", result: "rolled_back", reason: "recorded 0 of 3 segments <b>x</b>", at: at), failed: ["1.1.0"])
        let old = FleetUpdate.Report(release: "0.9.0", arch: "arm64", booted: nil)
        for (id, r) in [("box-good", good), ("box-back", back), ("box-old", old)] {
            _ = try await server.catalog.fleet(device: id, report: r, openRequest: false, recording: true)
        }
        try await server.catalog.addRelease(.init(version: "1.3.0", arch: "arm64", path: server.data + "/r.jub", bytes: 1, sha256: "00", minimumVersion: "1.0.0",
                                                  signedBy: "k", notes: nil, added: at))
        let (rollout, _) = try await server.catalog.startRollout(version: "1.3.0", arch: "arm64", waves: [2, nil])
        _ = try await server.catalog.fleet(device: "box-old", report: old, openRequest: false, recording: true)
        #expect(try await server.catalog.rolloutBoxes(rollout.id).map(\.device).sorted() == ["box-back", "box-good"],
                "a one-slot card is not in the rollout, nor does it join it later")
        try await server.catalog.stopRollout(id: rollout.id, reason: "canary box-back failed: rolled_back")
        // Settings from the commune (item 7): one box runs revision 1; another rolled 2 back.
        _ = try await server.catalog.sendSettings(device: "box-good", toml: "[upload]\nmax_kbps = 512\n", by: "hoange")
        _ = try await server.catalog.settingsHeartbeat(device: "box-good", report: .init(inForce: 1, seen: 1, last: .init(revision: 1, result: .applied, reason: nil, at: at)))
        _ = try await server.catalog.sendSettings(device: "box-back", toml: "[upload]\nmax_kbps = 512\n", by: "hoange")
        _ = try await server.catalog.sendSettings(device: "box-back", toml: "[camera]\nurl = \"rtsp://10.0.0.9/x\"\n", by: "hoange")
        _ = try await server.catalog.settingsHeartbeat(device: "box-back", report: .init(inForce: 1, seen: 2,
                                                      last: .init(revision: 2, result: .rolledBack, reason: "recorded 0 of 3 <i>y</i>", at: at)))
        let browser = Browser(server.url)
        _ = try await browser.signIn("hoange", "mat-khau-dai-5")
        let page = try await browser.request(.GET, "/boxes").body
        #expect(page.contains("data-settings=\"1\">Cài đặt từ xã: bản 1 đang dùng</small>"), "the revision in force")
        #expect(page.contains("data-settings-result=\"rolled_back\">bản 2: đã quay về cài đặt cũ") && page.contains("recorded 0 of 3 &lt;i&gt;y&lt;/i&gt;"),
                "a change rolled back, and why, escaped")
        #expect(!page.contains("data-settings-result=\"applied\""), "the revision in force is not said twice")
        #expect(page.contains("<th scope=\"col\">Phần mềm</th>"))
        #expect(page.contains("1.2.0 · khe b") && page.contains("1.2.0: đã giữ: chạy tốt"), "a blessed box")
        #expect(page.contains("data-update=\"rolled_back\">1.1.0: đã quay về bản cũ"), "a box that rolled back, and why")
        #expect(page.contains("recorded 0 of 3 segments &lt;b&gt;x&lt;/b&gt;") && !page.contains("<b>x</b>"))
        #expect(page.contains("0.9.0<br><small>thẻ một khe"), "a card with one slot says so")
        #expect(page.contains("<h2>Đợt cập nhật phần mềm</h2>") && page.contains("data-rollout=\"\(rollout.id)\""))
        #expect(page.contains("đã dừng<br><small>canary box-back failed: rolled_back</small>"), "the rollout stopped, and why")
        #expect(page.contains("1 / 2") && page.contains("2 chờ"), "wave 1 of 2; the two boxes with slots wait (the one-slot card is not in it)")
    }

    @Test func alarmsFollowTheirRules() {
        let now = Timestamp(rfc3339: "2026-12-02T10:00:00Z")!
        func box(seen: Double?, _ change: (inout Heartbeat.Health) -> Void = { _ in }) -> [BoxStatus.Alarm] {
            var h = Heartbeat.Health(recording: "recording", budgetBytes: 100_000, freeBytes: 10_000, pinnedBytes: 0, pinnedCapBytes: 50_000,
                                     clockSynchronized: true, version: "t", sentAt: now, heartbeatSeconds: 60)
            change(&h)
            return BoxStatus(Catalog.Device(id: "x", lastSeen: seen.map { now + -$0 }, health: seen == nil ? nil : h), now: now).alarms
        }
        #expect(box(seen: 0) == [])
        #expect(box(seen: nil) == [.neverSeen])
        #expect(box(seen: 180) == [], "three heartbeats late is the bound")
        #expect(box(seen: 181) == [.silent])
        #expect(box(seen: 0) { $0.recording = "waiting_for_camera" } == [.cameraDown])
        #expect(box(seen: 0) { $0.pinnedBytes = 40_000 } == [.cardFull], "80 % of the pin cap")
        #expect(box(seen: 0) { $0.pinnedBytes = 39_999 } == [])
        #expect(box(seen: 0) { $0.freeBytes = 1_999 } == [.cardFull], "under 2 % of the budget free")
        #expect(box(seen: 0) { $0.clockSynchronized = false } == [.clockNotSynchronised])
        #expect(box(seen: 0) { $0.damagedSegments = 1 } == [.damagedFootage])
        // A box that went quiet outranks one never installed, which outranks a fine one.
        let devices = [Catalog.Device(id: "a-never", lastSeen: nil, health: nil),
                       Catalog.Device(id: "b-fine", lastSeen: now, health: .init(recording: "recording", clockSynchronized: true, version: "t", sentAt: now)),
                       Catalog.Device(id: "c-silent", lastSeen: now + -3600, health: .init(recording: "recording", clockSynchronized: true, version: "t", sentAt: now))]
        #expect(BoxStatus.sorted(devices, now: now).map(\.device.id) == ["c-silent", "a-never", "b-fine"])
    }

    @Test func datesAreReadInTheLocalFormAndTheCommunesZone() {
        let local = LocalForm(timeZone: Desk.defaultTimeZone, language: .vi)
        #expect(local.parse("29/11/2026 14:02") == Timestamp(rfc3339: "2026-11-29T07:02:00Z"))
        #expect(local.parse(" 1/2/2026 9:05 ") == Timestamp(rfc3339: "2026-02-01T02:05:00Z"))
        #expect(local.parse("29/11/2026 14:02:30") == Timestamp(rfc3339: "2026-11-29T07:02:30Z"))
        let t = { Timestamp(rfc3339: $0)! }
        #expect(local.span(t("2026-11-29T07:02:00Z"), t("2026-11-29T07:12:00Z")) == "29/11/2026 14:02 – 14:12")
        #expect(local.span(t("2026-11-29T07:02:31Z"), t("2026-11-29T07:02:42Z")) == "29/11/2026 14:02:31 – 14:02:42", "seconds when they matter")
        #expect(local.span(t("2026-11-29T16:30:00Z"), t("2026-11-29T17:30:00Z")) == "29/11/2026 23:30 – 30/11/2026 00:30", "the day when it changes")
        #expect(local.dateTime(t("2026-11-29T07:02:31.900Z"), seconds: true) == "29/11/2026 14:02:31")
        #expect(local.parse(local.dateTime(t("2026-11-29T07:02:31Z"), seconds: true)) == t("2026-11-29T07:02:31Z"), "what is shown reads back")
        for bad in ["31/02/2026 10:00", "29/11/2026", "2026-11-29 14:02", "29/13/2026 10:00", "29/11/2026 24:00",
                    "29/11/1999 10:00", "29/11/2026 10:60", "-1/11/2026 10:00", "٢٩/11/2026 10:00", String(repeating: "1", count: 100)] {
            #expect(local.parse(bad) == nil, "\(bad)")
        }
        #expect(local.dateTime(Timestamp(rfc3339: "2026-11-29T07:02:00Z")!) == "29/11/2026 14:02")
    }

    @Test func anOfficerAsksForFootageAndFollowsItsCoverage() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("vuf", password: "mat-khau-dai-6")
        _ = try await server.catalog.addDevice(id: "box-a")
        let browser = Browser(server.url)
        _ = try await browser.signIn("vuf", "mat-khau-dai-6")
        let form = try await browser.request(.GET, "/requests/new?device=box-a")
        #expect(form.body.contains("<option value=\"box-a\" selected>"))
        let csrf = Browser.field("csrf", in: form.body) ?? ""
        // A date not in the local form: said, and what was typed is kept.
        let bad = try await browser.request(.POST, "/requests", form: ["csrf": csrf, "device": "box-a", "from": "2026-11-29 14:02",
                                                                       "to": "29/11/2026 14:09", "reason": "VV-118 <b>tai nạn</b>"])
        #expect(bad.status == 400 && bad.body.contains("dd/mm/yyyy HH:mm") && bad.body.contains("VV-118 &lt;b&gt;tai nạn&lt;/b&gt;"))
        let backwards = try await browser.request(.POST, "/requests", form: ["csrf": csrf, "device": "box-a", "from": "29/11/2026 14:09",
                                                                             "to": "29/11/2026 14:02", "reason": "x"])
        #expect(backwards.status == 400)
        let forged = try await browser.request(.POST, "/requests", form: ["csrf": "nope", "device": "box-a", "from": "29/11/2026 14:02",
                                                                          "to": "29/11/2026 14:09", "reason": "x"])
        #expect(forged.status == 403)
        let made = try await browser.request(.POST, "/requests", form: ["csrf": csrf, "device": "box-a", "from": "29/11/2026 14:02",
                                                                        "to": "29/11/2026 14:09", "reason": "VV-118 tai nạn QL37B"])
        #expect(made.status == 303)
        let request = try #require(try await server.catalog.requests().first)
        #expect(made.location == "/requests/\(request.id)")
        #expect(request.from == Timestamp(rfc3339: "2026-11-29T07:02:00Z") && request.to == Timestamp(rfc3339: "2026-11-29T07:09:00Z"))
        #expect(try await server.catalog.auditLog().first?.action == "request")

        // Waiting: the page refreshes itself and shows it all pending.
        let waiting = try await browser.request(.GET, "/requests/\(request.id)")
        #expect(waiting.body.contains("http-equiv=\"refresh\"") && waiting.body.contains("Chờ hộp nhận"))
        // The box reports half uploaded: the bar shows both.
        let t0 = request.from
        try await server.catalog.report(device: "box-a", .init(id: request.id, coverage: [
            .init(from: t0, to: t0 + 210, status: .uploaded), .init(from: t0 + 210, to: t0 + 420, status: .pending)]))
        let half = try await browser.request(.GET, "/requests/\(request.id)").body
        #expect(half.contains("class=\"uploaded\" x=\"0.00\" y=\"0\" width=\"500.00\"") && half.contains("class=\"pending\" x=\"500.00\""))
        #expect(half.contains("Đang gửi về"))
        try await server.catalog.report(device: "box-a", .init(id: request.id, coverage: [.init(from: t0, to: t0 + 420, status: .uploaded)]))
        let done = try await browser.request(.GET, "/requests/\(request.id)").body
        #expect(done.contains("Hoàn tất") && !done.contains("http-equiv=\"refresh\""), "complete: no more refreshing")
        let list = try await browser.request(.GET, "/requests").body
        #expect(list.contains("data-request=\"\(request.id)\"") && list.contains("VV-118 tai nạn QL37B"))
        #expect(try await browser.request(.GET, "/requests/..%2F..%2Fetc").status == 404)
    }

    /// Issue 14: a request's preview shows while it arrives (pictures in time order, each served
    /// as a JPEG), and the officer narrows the request from the pictures; a range outside it is
    /// refused with why, and the narrowing is in the audit log.
    @Test func thePreviewShowsAsItArrivesAndTheRequestIsNarrowedFromIt() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("vuf", password: "mat-khau-dai-6")
        _ = try await server.catalog.addDevice(id: "box-a")
        let t0 = Timestamp(rfc3339: "2026-11-29T07:02:00Z")!
        let request = try await server.catalog.addRequest(device: "box-a", camera: nil, from: t0, to: t0 + 600, reason: "VV-118")
        let browser = Browser(server.url)
        _ = try await browser.signIn("vuf", "mat-khau-dai-6")
        #expect(try await browser.request(.GET, "/requests/\(request.id)").body.contains("Hộp chưa gửi ảnh xem trước"))

        // Three of four pictures have arrived (coarse to fine: 0, 300, 150 s), the fourth is cut off.
        func jpeg(_ seed: UInt8) -> [UInt8] { fakeJPEG(304, seed: seed) }
        let sheet = PreviewSheet.encode([0, 300, 150, 450].map { .init(at: t0 + Double($0), jpeg: jpeg(UInt8($0 / 150))) })
        let part = server.data + "/part.jpv"
        try Data(sheet.prefix(sheet.count - 10)).write(to: URL(fileURLWithPath: part))
        try await server.catalog.createUpload(.init(id: "u1", device: "box-a", length: Int64(sheet.count), offset: 0, metadata: "", expires: .now() + 3600))
        try await server.catalog.previewUploadStarted(uploadID: "u1", request: request.id, partPath: part)
        let arriving = try await browser.request(.GET, "/requests/\(request.id)").body
        #expect(arriving.contains("data-pictures=\"3\"") && arriving.contains("3 ảnh đã đến, đang nhận tiếp"))
        let captions = ["14:02:00", "14:04:30", "14:07:00"].map { "<span>\($0)</span>" }
        let positions = captions.compactMap { arriving.range(of: $0)?.lowerBound }
        #expect(positions.count == 3 && positions == positions.sorted(), "in time order, whatever order they came in")
        let offsets = arriving.matches(of: /preview\/([0-9]+)"/).map { Int($0.output.1)! }
        #expect(offsets.count == 3)
        let picture = try await browser.request(.GET, "/requests/\(request.id)/preview/\(offsets[0])")
        #expect(picture.status == 200 && picture.headers.first(name: "content-type") == "image/jpeg" && picture.body.utf8.count > 300)
        #expect(try await browser.request(.GET, "/requests/\(request.id)/preview/\(offsets[0] + 1)").status == 404, "only where a picture starts")
        #expect(try await Browser(server.url).request(.GET, "/requests/\(request.id)/preview/\(offsets[0])").status == 303, "signed-in officers only")

        // Picked under the pictures: from 07:04:30 to the next picture; the page stops refreshing.
        let picked = try await browser.request(.GET, "/requests/\(request.id)?nfrom=\((t0 + 150).milliseconds)&nto=\((t0 + 300).milliseconds)").body
        #expect(!picked.contains("http-equiv=\"refresh\""))
        #expect(picked.contains("value=\"29/11/2026 14:04:30\"") && picked.contains("value=\"29/11/2026 14:07:00\""))
        #expect(picked.components(separatedBy: "<figure class=\"chosen\"").count == 2, "one picture lies in the part picked")
        let csrf = Browser.field("csrf", in: picked) ?? ""
        let outside = try await browser.request(.POST, "/requests/\(request.id)/narrow",
                                                form: ["csrf": csrf, "from": "29/11/2026 14:01:00", "to": "29/11/2026 14:07:00"])
        #expect(outside.status == 400 && outside.body.contains("phải nằm trong khoảng đã yêu cầu"))
        #expect(try await browser.request(.POST, "/requests/\(request.id)/narrow",
                                          form: ["csrf": "nope", "from": "29/11/2026 14:04:30", "to": "29/11/2026 14:07:00"]).status == 403)
        let narrowed = try await browser.request(.POST, "/requests/\(request.id)/narrow",
                                                 form: ["csrf": csrf, "from": "29/11/2026 14:04:30", "to": "29/11/2026 14:07:00"])
        #expect(narrowed.status == 303)
        let now = try #require(try await server.catalog.requests(id: request.id).first)
        #expect(now.from == t0 + 150 && now.to == t0 + 300)
        #expect(try await server.catalog.auditLog().first?.action == "request narrowed")
        #expect(try await browser.request(.GET, narrowed.location ?? "/").body.contains("Đã thu hẹp yêu cầu"))
    }

    @Test func onlyAnOfficerInChargeReadsTheAuditLogAndItsCSVIsSafe() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("canbo", password: "mat-khau-dai-7")
        try await server.addOperator("truong", password: "mat-khau-dai-8", chief: true)
        // A hostile detail: markup and a spreadsheet formula in what an officer typed.
        try await server.catalog.audit(operator: "canbo", address: "127.0.0.1", action: "request", detail: "=HYPERLINK(\"x\") <script>")
        let officer = Browser(server.url)
        _ = try await officer.signIn("canbo", "mat-khau-dai-7")
        #expect(try await officer.request(.GET, "/audit").status == 403)
        #expect(try await officer.request(.GET, "/audit.csv").status == 403)
        #expect(!(try await officer.request(.GET, "/boxes").body.contains("href=\"/audit\"")), "not offered to an officer")
        let chief = Browser(server.url)
        _ = try await chief.signIn("truong", "mat-khau-dai-8")
        let page = try await chief.request(.GET, "/audit")
        #expect(page.status == 200 && page.body.contains("Nhật ký truy cập") && page.body.contains("&lt;script&gt;"))
        #expect(!page.body.contains("<script>"))
        let csv = try await chief.request(.GET, "/audit.csv")
        #expect(csv.status == 200 && csv.headers.first(name: "content-disposition")?.contains("attachment") == true)
        #expect(csv.body.contains("\"'=HYPERLINK(\"\"x\"\") <script>\""), "a formula stays text, quotes doubled")
        let actions = try await server.catalog.auditLog().map(\.action)
        #expect(Array(actions.prefix(3)) == ["audit exported", "audit viewed", "sign-in"], "\(actions)")
        #expect(Desk.csvField("+1") == "\"'+1\"" && Desk.csvField("a,b") == "\"a,b\"")
    }

    @Test func clipsAreServedWholeOrByRangeToSignedInOfficersOnly() async throws {
        #expect(Desk.byteRange("bytes=0-99", size: 1000) == .range(0...99))
        #expect(Desk.byteRange("bytes=-100", size: 1000) == .range(900...999))
        #expect(Desk.byteRange("bytes=900-", size: 1000) == .range(900...999))
        #expect(Desk.byteRange("bytes=0-5000", size: 1000) == .range(0...999))
        #expect(Desk.byteRange("bytes=999-999", size: 1000) == .range(999...999), "the last byte: at the bound")
        // RFC 9110: a valid range outside the file is 416; anything not a valid single range is ignored (200).
        for outside in ["bytes=1000-", "bytes=-0", "bytes=1000-1001"] {
            #expect(Desk.byteRange(outside, size: 1000) == .unsatisfiable, "\(outside)")
        }
        for bad in ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=x-1", "bytes=+5-9", "bytes= 5-9", "bytes=٣-9", "bytes=-",
                    "bytes=" + String(repeating: "9", count: 200), "bytes=99999999999999999999-"] {
            #expect(Desk.byteRange(bad, size: 1000) == .ignored, "\(bad)")
        }
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("dangg", password: "mat-khau-dai-9")
        _ = try await server.catalog.addDevice(id: "box-a")
        let file = NSTemporaryDirectory() + "clip-" + UUID().uuidString + ".mp4"
        let bytes = (0..<1000).map { UInt8(32 + $0 % 90) }  // printable: the test's body is read as text
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        let t0 = Timestamp(rfc3339: "2026-11-29T07:02:00Z")!
        try await server.catalog.createUpload(.init(id: "u1", device: "box-a", length: 1000, offset: 1000, metadata: "", expires: t0 + 86400))
        try await server.catalog.fileClip(.init(path: file, device: "box-a", camera: "cam1", start: t0, end: t0 + 4, bytes: 1000,
                                                sha256: String(repeating: "c", count: 64), request: nil, reason: nil, receivedAt: t0), uploadID: "u1")
        let id = try #require(try await server.catalog.clips().first?.id)
        #expect(try await Browser(server.url).request(.GET, "/clips/\(id)").location == "/sign-in", "no session, no footage")
        let browser = Browser(server.url)
        _ = try await browser.signIn("dangg", "mat-khau-dai-9")
        let whole = try await browser.request(.GET, "/clips/\(id)")
        #expect(whole.status == 200 && whole.body.utf8.count == 1000 && whole.headers.first(name: "accept-ranges") == "bytes")
        let part = try await browser.request(.GET, "/clips/\(id)", headers: ["range": "bytes=100-199"])
        #expect(part.status == 206 && part.headers.first(name: "content-range") == "bytes 100-199/1000")
        #expect(Array(part.body.utf8) == Array(bytes[100...199]))
        #expect(try await browser.request(.GET, "/clips/\(id)", headers: ["range": "bytes=5000-"]).status == 416)
        for ignored in ["bytes=0-1,5-6", "bytes=9-1", "pages=1-2"] {
            let all = try await browser.request(.GET, "/clips/\(id)", headers: ["range": ignored])
            #expect(all.status == 200 && all.body.utf8.count == 1000, "\(ignored): the whole clip")
        }
        let head = try await browser.request(.HEAD, "/clips/\(id)")
        #expect(head.status == 200 && head.headers.first(name: "content-length") == "1000" && head.body.isEmpty, "HEAD was 404")
        let headPart = try await browser.request(.HEAD, "/clips/\(id)", headers: ["range": "bytes=0-9"])
        #expect(headPart.status == 206 && headPart.headers.first(name: "content-range") == "bytes 0-9/1000")
        #expect(try await browser.request(.GET, "/clips/999999").status == 404)
        #expect(try await browser.request(.GET, "/clips/..%2Fetc").status == 404)
    }

    /// Two clips of box-a ten minutes apart (14:02 and 14:12 in Hà Nội on 29/11/2026).
    static func twoClips(_ server: DeskServer) async throws -> (Int64, Int64) {
        _ = try await server.catalog.addDevice(id: "box-a")
        let t0 = Timestamp(rfc3339: "2026-11-29T07:02:00Z")!
        for (n, start) in [t0, t0 + 600].enumerated() {
            let file = NSTemporaryDirectory() + "clip-" + UUID().uuidString + ".mp4"
            _ = FileManager.default.createFile(atPath: file, contents: Data(repeating: 65, count: 100))
            try await server.catalog.createUpload(.init(id: "u\(n)", device: "box-a", length: 100, offset: 100, metadata: "", expires: t0 + 86400))
            try await server.catalog.fileClip(.init(path: file, device: "box-a", camera: "cam1", start: start, end: start + 4, bytes: 100,
                                                    sha256: String(repeating: "c", count: 64), request: nil, reason: nil, receivedAt: t0), uploadID: "u\(n)")
        }
        let ids = try await server.catalog.clips().map(\.id).sorted()
        return (ids[0], ids[1])
    }

    /// When something moved, before any video (issue 14): the box list draws each box's last
    /// 24 h a bar a minute, and a box's page the range shown; a box that sent none says so.
    @Test func theBoxListAndABoxsPageShowWhenSomethingMoved() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("lanh", password: "mat-khau-dai-7")
        _ = try await server.catalog.addDevice(id: "box-a")
        _ = try await server.catalog.addDevice(id: "box-quiet")
        let now = Timestamp.now()
        let from = Timestamp(milliseconds: now.milliseconds / 60_000 * 60_000) - 1800
        // 30 minutes: still, but movement in minutes 10 (a little) and 11 (a lot); 255: not known.
        var levels = [UInt8](repeating: 0, count: 30)
        levels[10] = 30
        levels[11] = 254
        levels[20] = 255
        #expect(try await server.catalog.addActivity(device: "box-a", Heartbeat.ActivityMinutes(from: from, levels: levels), now: now) == 29)
        let browser = Browser(server.url)
        _ = try await browser.signIn("lanh", "mat-khau-dai-7")
        let list = try await browser.request(.GET, "/boxes").body
        #expect(list.contains(Strings.vi[.activity24h]!))
        #expect(list.components(separatedBy: "class=\"moved\"").count - 1 == 2 && list.components(separatedBy: "class=\"still\"").count - 1 == 27,
                "two minutes moved, 27 still, the unknown one not drawn")
        #expect(list.contains(HTML.escape(Strings.vi[.activityNone]!)), "the quiet box has sent none")
        let local = LocalForm(timeZone: Desk.defaultTimeZone, language: .vi)
        let range = "from=\(local.dateTime(from + 540, seconds: true))&to=\(local.dateTime(from + 780, seconds: true))"
            .replacingOccurrences(of: " ", with: "%20")
        let page = try await browser.request(.GET, "/boxes/box-a/play?" + range)
        #expect(page.status == 200 && page.body.contains("<svg class=\"activity\""))
        #expect(page.body.components(separatedBy: "class=\"moved\"").count - 1 == 2 && page.body.components(separatedBy: "class=\"still\"").count - 1 == 2,
                "minutes 9–12 of the range: 9 and 12 still, 10 and 11 moved: \(page.body)")
        #expect(page.body.contains("height=\"20.0\""), "the busiest minute is the tallest bar")
    }

    @Test func anyRangeOfABoxsArrivedFootagePlaysWithoutARequest() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("dangg", password: "mat-khau-dai-9")
        let (first, second) = try await Self.twoClips(server)
        let browser = Browser(server.url)
        _ = try await browser.signIn("dangg", "mat-khau-dai-9")
        #expect(try await browser.request(.GET, "/boxes").body.contains("href=\"/boxes/box-a/play\""), "each box links to its footage")
        let whole = try await browser.request(.GET, "/boxes/box-a/play")
        #expect(whole.status == 200 && whole.body.contains("data-clip=\"\(first)\"") && whole.body.contains("data-clip=\"\(second)\""),
                "by default the last hour of what arrived")
        #expect(whole.body.contains("value=\"29/11/2026 14:02:00\""), "the range is shown to the second, as it can be typed back")
        #expect(whole.body.contains("action=\"/boxes/box-a/evidence\""), "the range can be taken as evidence")
        let typed = try await browser.request(.GET, "/boxes/box-a/play?from=29/11/2026+14:01&to=29/11/2026%2014:05")
        #expect(typed.status == 200 && typed.body.contains("data-clip=\"\(first)\"") && !typed.body.contains("data-clip=\"\(second)\"")
                && !typed.body.contains("class=\"notice"), "a space sent as + (a GET form) or %20")
        for (query, word) in [("from=31/02/2026%2010:00&to=01/03/2026%2010:00", Strings.vi[.badDate]!),
                              ("from=29/11/2026%2014:05&to=29/11/2026%2014:01", Strings.vi[.rangeEmpty]!),
                              ("from=01/01/2026%2000:00&to=01/03/2026%2000:00", Strings.vi[.rangeTooLong]!),
                              ("from=%3Cscript%3E&to=x", Strings.vi[.badDate]!)] {
            let page = try await browser.request(.GET, "/boxes/box-a/play?" + query)
            #expect(page.status == 200 && page.body.contains(HTML.escape(word)) && !page.body.contains("<script>"), "\(query)")
        }
        #expect(try await browser.request(.GET, "/boxes/nope/play").status == 404)
        #expect(try await browser.request(.GET, "/boxes/..%2Fx/play").status == 404)
        #expect(try await browser.request(.POST, "/boxes/box-a/evidence", form: ["csrf": "forged", "from_ms": "0", "to_ms": "1"]).status == 403)
        let csrf = try #require(Browser.field("csrf", in: whole.body))
        let empty = try await browser.request(.POST, "/boxes/box-a/evidence", form: ["csrf": csrf, "from_ms": "10", "to_ms": "5"])
        #expect(empty.status == 400)
        let views = try await server.catalog.auditLog().filter { $0.action == "view" }
        #expect(views.count == 6 && views.allSatisfy { $0.detail.contains("box-a") }, "every view is audited")
    }

    @Test func evidenceIsServedOnlyWhileItMatchesTheSumsWrittenWhenItWasMade() async throws {
        let server = try await DeskServer.start()
        defer { Task { await server.stop() } }
        try await server.addOperator("dangg", password: "mat-khau-dai-9")
        let folder = server.data + "/evidence/r1-20261129T070200Z"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: folder + "/a.mp4", contents: Data("footage".utf8))
        let sha = "4b7b2d8e0c5a2d2e0cc4c9e1e3b0fbb1b0e75b5a6f8a0b33b1f0a6a9a0d5e6f1"
        let real = try TusEndpoint.sha256(folder + "/a.mp4")
        _ = FileManager.default.createFile(atPath: folder + "/SHA256SUMS", contents: Data("\(real)  a.mp4\n".utf8))
        let browser = Browser(server.url)
        _ = try await browser.signIn("dangg", "mat-khau-dai-9")
        let page = try await browser.request(.GET, "/evidence/r1-20261129T070200Z")
        #expect(page.status == 200 && page.body.contains(real) && page.body.contains("SHA256SUMS"))
        let ok = try await browser.request(.GET, "/evidence/r1-20261129T070200Z/a.mp4")
        #expect(ok.status == 200 && ok.body == "footage" && ok.headers.first(name: "x-content-sha256") == real)
        _ = FileManager.default.createFile(atPath: folder + "/a.mp4", contents: Data("f00tage".utf8))
        let refused = try await browser.request(.GET, "/evidence/r1-20261129T070200Z/a.mp4")
        #expect(refused.status == 409 && !refused.body.contains("f00tage"), "a file changed on the server is not served")
        #expect(try await server.catalog.auditLog().contains { $0.action == "download refused" })
        _ = FileManager.default.createFile(atPath: folder + "/SHA256SUMS", contents: Data("\(sha)  ../a.mp4\n".utf8))
        #expect(try await browser.request(.GET, "/evidence/r1-20261129T070200Z").status == 404, "a sums file not in its form is not trusted")
        #expect(try await browser.request(.GET, "/evidence/nothing-here").status == 404)
    }
}
