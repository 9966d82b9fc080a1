import Commune
import Evidence
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Wire

/// The police desk: the web page `commune serve` serves to officers at a desk PC. Sign-in with
/// an operator name and password (bcrypt), a session cookie (HttpOnly, SameSite=Strict, Secure
/// over HTTPS; only its hash is stored), a CSRF token on every form, throttled sign-in, the box
/// list with its alarms, Vietnamese first and English second. Every page is HTML made on the
/// server with every outside text escaped, under a Content-Security-Policy without inline script
/// or style; nothing is fetched from the internet, so it works on a police LAN with no uplink.
/// Device tokens never open it: it knows only its own cookie.
public struct Desk: Sendable {
    public struct Configuration: Sendable {
        /// The commune's time zone: dates are read and written in it (dd/mm/yyyy HH:mm).
        public var timeZone: TimeZone
        /// Set when the server speaks HTTPS: cookies then carry `Secure`.
        public var secureCookies: Bool
        public var session: Catalog.SessionLifetime
        /// bcrypt's cost (2^cost rounds); tests lower it.
        public var bcryptCost: UInt8
        /// Where evidence packages are written (`<data>/evidence`).
        public var evidenceRoot: String
        /// The commune's key: its countersignatures and its binding of the device key go into
        /// each package's proof, and it signs each package's manifest (issue 23).
        public var communeKey: DeviceKey?
        public var communePublicKey: String? { communeKey?.publicKeyBase64 }
        /// Addresses of the proxies in front of the desk (`[desk] trusted_proxies`): from them
        /// the client is the address `X-Forwarded-For` names last before any of them; from
        /// anyone else the header is ignored.
        public var trustedProxies: Set<String> = []

        public init(timeZone: TimeZone = Desk.defaultTimeZone, secureCookies: Bool, session: Catalog.SessionLifetime = .init(),
                    bcryptCost: UInt8 = 12, evidenceRoot: String) {
            self.timeZone = timeZone
            self.secureCookies = secureCookies
            self.session = session
            self.bcryptCost = bcryptCost
            self.evidenceRoot = evidenceRoot
        }
    }

    public static let defaultTimeZoneName = "Asia/Ho_Chi_Minh"
    public static var defaultTimeZone: TimeZone { TimeZone(identifier: defaultTimeZoneName) ?? TimeZone(secondsFromGMT: 7 * 3600)! }
    /// A new password's least length.
    public static let minPasswordCharacters = 10
    /// A form body's bound (a sign-in is a few hundred bytes).
    static let maxFormBytes = 16 * 1024

    static let sessionCookie = "desk_session"
    static let formCookie = "desk_form"
    static let languageCookie = "desk_lang"
    /// A browser an officer signed in from (`SignInThrottle`): kept a year.
    static let browserCookie = "desk_browser"
    /// bcrypt's own bounds (issue 22): it reads a password up to its first NUL and its first 72
    /// bytes, so a NUL made the empty password sign in and only 72 bytes counted. A password
    /// past them is refused when set, and never matches at sign-in.
    public static let maxPasswordBytes = 72
    public static func usablePassword(_ p: String) -> Bool { !p.utf8.contains(0) && p.utf8.count <= maxPasswordBytes }

    let catalog: Catalog
    let configuration: Configuration
    let logger: Logger
    let throttle = SignInThrottle()

    public init(catalog: Catalog, configuration: Configuration, logger: Logger) {
        self.catalog = catalog
        self.configuration = configuration
        self.logger = logger
    }

    public func register<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("/") { request, _ in
            try await self.signedIn(request) != nil ? Self.redirect("/boxes") : Self.redirect("/sign-in")
        }
        router.get("sign-in") { request, _ in self.signInPage(request, notice: nil, status: .ok) }
        router.post("sign-in") { request, context in try await self.signIn(request, address: self.address(request, context)) }
        router.post("sign-out") { request, context in try await self.signOut(request, address: self.address(request, context)) }
        router.get("password") { request, _ in
            try await self.withSession(request, allowMustChange: true) { session in self.passwordPage(request, session, notice: nil, status: .ok) }
        }
        router.post("password") { request, context in
            try await self.withSession(request, allowMustChange: true) { session in
                try await self.changePassword(request, session, address: self.address(request, context))
            }
        }
        router.get("boxes") { request, _ in try await self.withSession(request) { session in try await self.boxesPage(request, session) } }
        router.get("lang/:language") { request, context in
            let language = Language(rawValue: context.parameters.get("language") ?? "") ?? .vi
            var response = Self.redirect("/")
            response.setCookie(Cookie(name: Self.languageCookie, value: language.rawValue, maxAge: 365 * 86400, path: "/",
                                      secure: configuration.secureCookies, httpOnly: true, sameSite: .strict))
            return response
        }
        registerRequests(on: router)
        registerAudit(on: router)
        registerPlayback(on: router)
        registerEvidence(on: router)
        registerBoxFootage(on: router)
        router.get("desk.svg") { _, _ in
            Response(status: .ok, headers: Self.securityHeaders(contentType: "image/svg+xml", cache: "max-age=86400"),
                     body: .init(byteBuffer: ByteBuffer(string: DeskAssets.icon)))
        }
        router.get("desk.css") { _, _ in
            Response(status: .ok, headers: Self.securityHeaders(contentType: "text/css; charset=utf-8", cache: "max-age=3600"),
                     body: .init(byteBuffer: ByteBuffer(string: DeskAssets.css)))
        }
    }

    // MARK: sign-in

    func signInPage(_ request: Request, notice: String?, status: HTTPResponse.Status, name: String = "") -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        // A form token before there is a session: the same random value in a cookie and in
        // the form (a page on another site can send the form but cannot read the cookie).
        let formToken = Catalog.newToken()
        let body = """
            <section class="sign-in"><h1>\(t(.signInTitle))</h1>
            \(notice.map { HTML.notice($0) } ?? "")
            <form method="post" action="/sign-in">
            <input type="hidden" name="csrf" value="\(formToken)">
            <label>\(t(.operatorName)) <input name="name" value="\(HTML.escape(name))" autocomplete="username" required maxlength="64"\(name.isEmpty ? " autofocus" : "")></label>
            <label>\(t(.password)) <input name="password" type="password" autocomplete="current-password" required maxlength="200"\(name.isEmpty ? "" : " autofocus")></label>
            <button type="submit">\(t(.signIn))</button>
            </form></section>
            """
        var response = Self.html(HTML.page(title: Strings.text(.signInTitle, language), language: language, body: body), status: status)
        response.setCookie(Cookie(name: Self.formCookie, value: formToken, path: "/", secure: configuration.secureCookies,
                                  httpOnly: true, sameSite: .strict))
        return response
    }

    struct SignInForm: Decodable {
        var name: String
        var password: String
        var csrf: String
    }

    func signIn(_ request: Request, address: String) async throws -> Response {
        let language = Self.language(request)
        guard let form = try await Self.form(SignInForm.self, request),
              let expected = request.cookies[Self.formCookie]?.value, !expected.isEmpty, Self.same(form.csrf, expected)
        else {
            return signInPage(request, notice: Strings.text(.formExpired, language), status: .forbidden)
        }
        let now = Timestamp.now()
        let name = String(form.name.prefix(64))
        let browserCookie = request.cookies[Self.browserCookie]?.value
        var browser: String?
        if let c = browserCookie, c.utf8.count <= 128, try await catalog.isKnownBrowser(c, operator: name) { browser = c }
        guard await throttle.allows(address: address, name: name, browser: browser, now: now) else {
            // Counted, a row a window: throttled guesses cannot bury the officers' own actions.
            try await catalog.auditNoise(address: address, action: "sign-in throttled", detail: name, now: now)
            return signInPage(request, notice: Strings.text(.tooManyAttempts, language), status: .tooManyRequests, name: name)
        }
        let credentials = try await catalog.credentials(operator: name)
        let password = form.password
        // An unknown name, or a password bcrypt would read short, costs the same bcrypt as a
        // wrong password (no probing by time) and never matches.
        let hash = credentials?.passwordBcrypt ?? Self.decoyHash
        let checked: Bool
        do { checked = try await Self.bcrypt { Bcrypt.verify(Self.usablePassword(password) ? password : "", hash: hash) } } catch is Busy {
            return signInPage(request, notice: Strings.text(.serverBusy, language), status: .serviceUnavailable, name: name)
        }
        guard checked, Self.usablePassword(password), credentials?.passwordBcrypt != nil, let credentials else {
            await throttle.failed(address: address, name: name, browser: browser, now: now)
            try await catalog.auditNoise(address: address, action: "sign-in refused", detail: name, now: now)
            logger.notice("desk: sign-in refused", metadata: ["name": "\(TerminalText.safe(name))", "address": "\(address)"])
            return signInPage(request, notice: Strings.text(.wrongPassword, language), status: .unauthorized, name: name)
        }
        await throttle.succeeded(name: name, browser: browser)
        let (cookie, _) = try await catalog.openSession(operator: credentials.name, address: address, lifetime: configuration.session, now: now)
        try await catalog.audit(operator: credentials.name, address: address, action: "sign-in", now: now)
        var response = Self.redirect(credentials.oneTime ? "/password" : "/boxes")
        response.setCookie(Cookie(name: Self.sessionCookie, value: cookie, path: "/", secure: configuration.secureCookies,
                                  httpOnly: true, sameSite: .strict))
        if browser == nil {
            let known = try await catalog.addKnownBrowser(operator: credentials.name, now: now)
            response.setCookie(Cookie(name: Self.browserCookie, value: known, maxAge: 365 * 86400, path: "/sign-in",
                                      secure: configuration.secureCookies, httpOnly: true, sameSite: .strict))
        }
        return response
    }

    struct TokenForm: Decodable { var csrf: String }

    func signOut(_ request: Request, address: String) async throws -> Response {
        guard let cookie = request.cookies[Self.sessionCookie]?.value,
              let session = try await catalog.session(cookie: cookie, lifetime: configuration.session)
        else { return Self.redirect("/sign-in") }
        guard let form = try await Self.form(TokenForm.self, request), Self.same(form.csrf, session.csrf) else {
            return Self.forbidden(request, session)
        }
        try await catalog.closeSession(cookie: cookie)
        try await catalog.audit(operator: session.operator, address: address, action: "sign-out")
        var response = Self.redirect("/sign-in")
        response.setCookie(Cookie(name: Self.sessionCookie, value: "", maxAge: 0, path: "/", secure: configuration.secureCookies,
                                  httpOnly: true, sameSite: .strict))
        return response
    }

    // MARK: sessions

    func signedIn(_ request: Request) async throws -> Catalog.Session? {
        guard let cookie = request.cookies[Self.sessionCookie]?.value, !cookie.isEmpty else { return nil }
        return try await catalog.session(cookie: cookie, lifetime: configuration.session)
    }

    /// Runs `body` for a signed-in officer; anyone else goes to the sign-in page (saying the
    /// session ended when a cookie was sent), and one who must change a one-time password goes
    /// to that page first.
    func withSession(_ request: Request, allowMustChange: Bool = false,
                     _ body: (Catalog.Session) async throws -> Response) async throws -> Response {
        guard let session = try await signedIn(request) else {
            if request.cookies[Self.sessionCookie] != nil {
                return signInPage(request, notice: Strings.text(.sessionEnded, Self.language(request)), status: .unauthorized)
            }
            return Self.redirect("/sign-in")
        }
        if session.mustChangePassword && !allowMustChange { return Self.redirect("/password") }
        return try await body(session)
    }

    // MARK: password

    func passwordPage(_ request: Request, _ session: Catalog.Session, notice: (String, String)?, status: HTTPResponse.Status) -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let intro = session.mustChangePassword ? HTML.notice(Strings.text(.oneTimePasswordNotice, language), kind: "info") : ""
        let body = """
            <section class="password"><h1>\(t(.changePassword))</h1>\(intro)
            \(notice.map { HTML.notice($0.0, kind: $0.1) } ?? "")
            <form method="post" action="/password">
            <input type="hidden" name="csrf" value="\(HTML.escape(session.csrf))">
            <label>\(t(.currentPassword)) <input name="current" type="password" autocomplete="current-password" required maxlength="200"></label>
            <label>\(t(.newPassword)) <input name="new" type="password" autocomplete="new-password" required minlength="\(Self.minPasswordCharacters)" maxlength="200"></label>
            <label>\(t(.repeatPassword)) <input name="repeat" type="password" autocomplete="new-password" required maxlength="200"></label>
            <button type="submit">\(t(.changePassword))</button>
            </form></section>
            """
        return Self.html(HTML.page(title: Strings.text(.changePassword, language), language: language, session: session, body: body), status: status)
    }

    struct PasswordForm: Decodable {
        var csrf: String
        var current: String
        var new: String
        var `repeat`: String
    }

    func changePassword(_ request: Request, _ session: Catalog.Session, address: String) async throws -> Response {
        let language = Self.language(request)
        guard let form = try await Self.form(PasswordForm.self, request), Self.same(form.csrf, session.csrf) else {
            return passwordPage(request, session, notice: (Strings.text(.formExpired, language), "error"), status: .forbidden)
        }
        // Wrong current passwords are throttled like sign-ins (a session left open is not a
        // free guessing machine: issue 22).
        let now = Timestamp.now()
        guard await throttle.allows(address: address, name: "password:" + session.operator, now: now) else {
            try await catalog.auditNoise(address: address, action: "password change throttled", detail: session.operator, now: now)
            return passwordPage(request, session, notice: (Strings.text(.tooManyAttempts, language), "error"), status: .tooManyRequests)
        }
        let hash = try await catalog.credentials(operator: session.operator)?.passwordBcrypt ?? Self.decoyHash
        let current = form.current
        let checked: Bool
        do { checked = try await Self.bcrypt { Bcrypt.verify(Self.usablePassword(current) ? current : "", hash: hash) } } catch is Busy {
            return passwordPage(request, session, notice: (Strings.text(.serverBusy, language), "error"), status: .serviceUnavailable)
        }
        guard checked, Self.usablePassword(current) else {
            await throttle.failed(address: address, name: "password:" + session.operator, now: now)
            try await catalog.audit(operator: session.operator, address: address, action: "password change refused")
            return passwordPage(request, session, notice: (Strings.text(.wrongPassword, language), "error"), status: .unauthorized)
        }
        guard form.new.count >= Self.minPasswordCharacters else {
            return passwordPage(request, session, notice: (Strings.text(.passwordTooShort, language), "error"), status: .badRequest)
        }
        guard Self.usablePassword(form.new) else {
            return passwordPage(request, session, notice: (Strings.text(.passwordUnusable, language), "error"), status: .badRequest)
        }
        guard form.new == form.repeat else {
            return passwordPage(request, session, notice: (Strings.text(.passwordsDiffer, language), "error"), status: .badRequest)
        }
        let new = form.new, cost = configuration.bcryptCost
        let newHash: String
        do { newHash = try await Self.bcrypt { Bcrypt.hash(new, cost: cost) } } catch is Busy {
            return passwordPage(request, session, notice: (Strings.text(.serverBusy, language), "error"), status: .serviceUnavailable)
        }
        try await catalog.setPassword(operator: session.operator, bcrypt: newHash, oneTime: false)
        try await catalog.closeSessions(operator: session.operator, except: request.cookies[Self.sessionCookie]?.value)
        try await catalog.audit(operator: session.operator, address: address, action: "password changed")
        return Self.redirect("/boxes")
    }

    // MARK: boxes

    func boxesPage(_ request: Request, _ session: Catalog.Session) async throws -> Response {
        let language = Self.language(request)
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let now = Timestamp.now()
        let boxes = BoxStatus.sorted(try await catalog.devices(), now: now)
        let releases = try await catalog.updateReports()
        let settings = try await catalog.settingsOverview()
        var rows = ""
        for box in boxes {
            let h = box.device.health
            let alarms = box.alarms.isEmpty
                ? "<span class=\"ok\">\(t(.noAlarm))</span>"
                : box.alarms.map { "<span class=\"alarm \($0.rawValue)\">\(t($0.key))</span>" }.joined(separator: " ")
            let seen = box.device.lastSeen.map { "\(local.dateTime($0)) <small>(\(local.elapsed(now.seconds(since: $0))) \(t(.ago)))</small>" } ?? t(.never)
            var recording = "—"
            if let h {
                recording = h.recording == "recording" ? t(.stateRecording) : "\(t(.stateNotRecording)) <small>(\(HTML.escape(h.recording)))</small>"
                if let error = h.lastError, h.recording != "recording" { recording += "<br><small class=\"error-text\">\(HTML.escape(error))</small>" }
            }
            let cells: [String] = [
                "<th scope=\"row\">\(HTML.escape(box.device.id))<br><a class=\"small\" href=\"/requests/new?device=\(HTML.escape(box.device.id))\">\(t(.newRequest))</a>"
                    + " · <a class=\"small\" href=\"/boxes/\(HTML.escape(box.device.id))/play\">\(t(.arrivedFootage))</a></th>",
                "<td class=\"alarms\">\(alarms)</td>",
                "<td>\(seen)</td>",
                "<td>\(recording)</td>",
                "<td>\(h?.camera.map(HTML.escape) ?? "—")</td>",
                "<td>\(h.map { $0.clockSynchronized ? t(.clockSynced) : t(.clockNotSynced) } ?? "—")</td>",
                "<td>\(h?.oldest.map { local.dateTime($0) } ?? "—")</td>",
                "<td>\(h.map { local.bytes($0.freeBytes) } ?? "—")</td>",
                "<td>\(h.map { "\(local.bytes($0.pinnedBytes)) / \(local.bytes($0.pinnedCapBytes))" } ?? "—")</td>",
                "<td>\(h.map { "\($0.queuedSegments) \(t(.segmentsUnit))" } ?? "—")</td>",
                "<td>\(h?.uploadBytesPerSecond.map(local.rate) ?? "—")</td>",
                "<td class=\"software\">\(Self.software(releases[box.device.id], t: t, local: local))\(Self.settings(settings[box.device.id], t: t, local: local))</td>",
                "<td class=\"activity\">\(try await activityStrip(device: box.device.id, from: now - 86_400, to: now, language: language))</td>",
            ]
            rows += "<tr class=\"\(box.alarms.isEmpty ? "fine" : "trouble")\" data-device=\"\(HTML.escape(box.device.id))\">\(cells.joined())</tr>\n"
        }
        let headings: [Key] = [.box, .alarms, .lastSeen, .recording, .camera, .clock, .footageSpan, .cardFree, .pinned, .queued, .uploading, .software, .activity24h]
        let table = boxes.isEmpty ? "<p>\(t(.noBoxes))</p>" : """
            <div class="scroll"><table class="boxes"><thead><tr>\(headings.map { "<th scope=\"col\">\(t($0))</th>" }.joined())</tr></thead>
            <tbody>
            \(rows)</tbody></table></div>
            """
        let body = "<h1>\(t(.boxes))</h1>\n\(table)\n\(try await rolloutsSection(t: t, local: local))"
        return Self.html(HTML.page(title: Strings.text(.boxes, language), language: language, session: session, body: body), status: .ok)
    }

    // MARK: helpers

    static func language(_ request: Request) -> Language {
        if let chosen = request.cookies[languageCookie].flatMap({ Language(rawValue: $0.value) }) { return chosen }
        return Language.preferred(acceptLanguage: request.headers[.acceptLanguage])
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the last address
    /// `X-Forwarded-For` names that is not one of the proxies (what the proxy itself saw).
    func address<Context: RemoteAddressRequestContext>(_ request: Request, _ context: Context) -> String {
        let peer = context.remoteAddress?.ipAddress ?? "unknown"
        return Self.clientAddress(peer: peer, forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!],
                                  trusted: configuration.trustedProxies)
    }

    static func clientAddress(peer: String, forwardedFor: [String], trusted: Set<String>) -> String {
        guard trusted.contains(peer) else { return peer }
        let hops = forwardedFor.joined(separator: ",").split(separator: ",").suffix(16)
            .map { String($0.trimmingCharacters(in: .whitespaces).prefix(64)) }
        return hops.reversed().first { !trusted.contains($0) && !$0.isEmpty } ?? peer
    }

    static func securityHeaders(contentType: String, cache: String = "no-store") -> HTTPFields {
        var h = HTTPFields()
        h[.contentType] = contentType
        h[.cacheControl] = cache
        h[.contentSecurityPolicy] = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
        h[.xContentTypeOptions] = "nosniff"
        h[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        h[HTTPField.Name("X-Frame-Options")!] = "DENY"
        return h
    }

    static func html(_ page: String, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: securityHeaders(contentType: "text/html; charset=utf-8"),
                 body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    /// A form sent without this session's token (another site's page, or a page from before a
    /// sign-in): refused with a word on what to do.
    static func forbidden(_ request: Request, _ session: Catalog.Session) -> Response {
        let language = language(request)
        return html(HTML.page(title: "403", language: language, session: session, body: HTML.notice(Strings.text(.formExpired, language))),
                    status: .forbidden)
    }

    /// A redirect to one of the desk's own paths (never to a place a request names).
    static func redirect(_ path: String) -> Response {
        precondition(path.hasPrefix("/") && !path.hasPrefix("//"))
        var headers = securityHeaders(contentType: "text/plain; charset=utf-8")
        headers[.location] = path
        return Response(status: .seeOther, headers: headers)
    }

    /// A form body (application/x-www-form-urlencoded, at most `maxFormBytes`), or nil when it
    /// is not the form expected. Too big: 413 with what happened (it said "the form has expired").
    static func form<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T? {
        var request = request
        guard let body = try? await request.collectBody(upTo: maxFormBytes) else {
            throw HTTPError(.contentTooLarge, message: Strings.text(.formTooLarge, .vi) + "\n" + Strings.text(.formTooLarge, .en))
        }
        return try? URLEncodedFormDecoder().decode(T.self, from: String(buffer: body))
    }

    /// Compares two tokens in time that does not depend on where they differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// A bcrypt hash no password matches: what an unknown name is checked against.
    static let decoyHash = Bcrypt.hash(Catalog.newToken(), cost: 12)

    /// Runs slow work (hashing or joining files) on the thread pool, off the event loops.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    /// bcrypt runs on two threads of its own, at most `maxBcryptWaiting` checks queued: anyone's
    /// sign-in attempts cannot take the threads that write the boxes' uploads (228 attempts once
    /// slowed a box's PATCH from 7 ms to 4.8 s), nor queue without bound (past it: `Busy`, 503).
    static let bcryptPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()
    static let maxBcryptWaiting = 16
    static let bcryptWaiting = Atomic<Int>(0)
    struct Busy: Error {}

    static func bcrypt<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard bcryptWaiting.add(1, ordering: .relaxed).newValue <= maxBcryptWaiting else {
            bcryptWaiting.subtract(1, ordering: .relaxed)
            throw Busy()
        }
        defer { bcryptWaiting.subtract(1, ordering: .relaxed) }
        return try await bcryptPool.runIfActive(body)
    }

    /// bcrypt of a password, on its pool (for `commune operators`). Refuses what bcrypt would
    /// read short (`usablePassword`).
    public static func hashPassword(_ password: String, cost: UInt8 = 12) async throws -> String {
        guard usablePassword(password) else { throw HTTPError(.badRequest, message: Strings.text(.passwordUnusable, .en)) }
        return try await bcryptPool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }
}
