import Commune
import Foundation
import HTTPTypes
import Hummingbird
import Wire

/// Footage requests on the desk: ask a box for a time range (typed in the local form), and follow
/// what has arrived as a coverage bar that refreshes itself while the request is open.
extension Desk {
    /// Bounds on a request made from the page (the box's own flag bounds: README, "Limits").
    static let maxRequestSeconds = 31.0 * 86400
    static let maxReasonCharacters = 500
    static let refreshSeconds = 5

    func registerRequests<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("requests") { request, _ in try await self.withSession(request) { session in try await self.requestsPage(request, session) } }
        router.get("requests/new") { request, _ in
            try await self.withSession(request) { session in try await self.newRequestPage(request, session, form: nil, notice: nil, status: .ok) }
        }
        router.post("requests") { request, context in
            try await self.withSession(request) { session in try await self.createRequest(request, session, address: self.address(request, context)) }
        }
        registerPreviews(on: router)
        router.get("requests/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await self.withSession(request) { session in try await self.requestPage(request, session, id: id) }
        }
    }

    // MARK: list

    func requestsPage(_ request: Request, _ session: Catalog.Session) async throws -> Response {
        let language = Self.language(request)
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let all = try await catalog.requests().reversed()
        var rows = ""
        for r in all {
            rows += """
                <tr data-request="\(HTML.escape(r.id))"><td><a href="/requests/\(HTML.escape(r.id))">\(HTML.escape(r.device))</a></td>
                <td>\(local.span(r.from, r.to))</td><td>\(HTML.escape(r.reason ?? ""))</td>
                <td class="state \(r.state.rawValue)">\(t(Self.stateKey(r.state)))</td><td>\(Self.bar(r))</td></tr>

                """
        }
        let table = all.isEmpty ? "<p>\(t(.noRequests))</p>" : """
            <div class="scroll"><table class="list"><thead><tr><th>\(t(.box))</th><th>\(t(.from)) – \(t(.to))</th><th>\(t(.reason))</th>
            <th>\(t(.requestState))</th><th>\(t(.coverage))</th></tr></thead><tbody>
            \(rows)</tbody></table></div>
            """
        let body = """
            <h1>\(t(.requests))</h1><p><a class="button" href="/requests/new">\(t(.newRequest))</a></p>
            \(table)
            """
        return Self.html(HTML.page(title: Strings.text(.requests, language), language: language, session: session, body: body), status: .ok)
    }

    // MARK: new

    struct RequestForm: Decodable {
        var csrf: String
        var device: String
        var from: String
        var to: String
        var reason: String
    }

    func newRequestPage(_ request: Request, _ session: Catalog.Session, form: RequestForm?, notice: String?,
                        status: HTTPResponse.Status) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let devices = try await catalog.devices()
        let chosen = form?.device ?? request.uri.queryParameters["device"].map(String.init) ?? ""
        let options = devices.map { d in
            "<option value=\"\(HTML.escape(d.id))\"\(d.id == chosen ? " selected" : "")>\(HTML.escape(d.id))</option>"
        }.joined()
        let body = """
            <section class="form"><h1>\(t(.newRequest))</h1>
            \(notice.map { HTML.notice($0) } ?? "")
            <form method="post" action="/requests">
            <input type="hidden" name="csrf" value="\(HTML.escape(session.csrf))">
            <label>\(t(.box)) <select name="device" required><option value="">—</option>\(options)</select></label>
            <label>\(t(.from)) <input name="from" value="\(HTML.escape(form?.from ?? ""))" placeholder="\(t(.dateHint))" required maxlength="40" inputmode="numeric"></label>
            <label>\(t(.to)) <input name="to" value="\(HTML.escape(form?.to ?? ""))" placeholder="\(t(.dateHint))" required maxlength="40" inputmode="numeric"></label>
            <label>\(t(.reason)) <input name="reason" value="\(HTML.escape(form?.reason ?? ""))" placeholder="\(t(.reasonHint))" required maxlength="\(Self.maxReasonCharacters)"></label>
            <p class="hint">\(t(.dateHint)) · \(HTML.escape(configuration.timeZone.identifier))</p>
            <button type="submit">\(t(.send))</button>
            </form></section>
            """
        return Self.html(HTML.page(title: Strings.text(.newRequest, language), language: language, session: session, body: body), status: status)
    }

    func createRequest(_ request: Request, _ session: Catalog.Session, address: String) async throws -> Response {
        let language = Self.language(request)
        let text = { (k: Key) in Strings.text(k, language) }
        guard let form = try await Self.form(RequestForm.self, request), Self.same(form.csrf, session.csrf) else {
            return Self.forbidden(request, session)
        }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        func again(_ notice: String) async throws -> Response {
            try await newRequestPage(request, session, form: form, notice: notice, status: .badRequest)
        }
        guard !form.device.isEmpty else { return try await again(text(.chooseBox)) }
        guard let from = local.parse(form.from), let to = local.parse(form.to) else { return try await again(text(.badDate)) }
        guard to > from else { return try await again(text(.rangeEmpty)) }
        guard to.seconds(since: from) <= Self.maxRequestSeconds else { return try await again(text(.rangeTooLong)) }
        let reason = String(form.reason.prefix(Self.maxReasonCharacters))
        let made: Catalog.Request
        do {
            made = try await catalog.addRequest(device: form.device, camera: nil, from: from, to: to, reason: reason.isEmpty ? nil : reason)
        } catch let error as Catalog.RequestError {
            return try await again("\(error)")
        }
        try await catalog.audit(operator: session.operator, address: address, action: "request",
                                detail: "\(made.id) \(made.device) \(from)–\(to) \(reason)")
        logger.notice("desk: footage requested", metadata: ["id": "\(made.id)", "device": "\(made.device)", "by": "\(session.operator)"])
        return Self.redirect("/requests/" + made.id)
    }

    // MARK: one request

    /// The request named in a path, or nil (also for a name that could not be one).
    func footageRequest(_ id: String) async throws -> Catalog.Request? {
        guard PlainName.isValid(id) else { return nil }
        return try await catalog.requests(id: id).first
    }

    static func notFound(_ request: Request, _ session: Catalog.Session) -> Response {
        let language = language(request)
        return html(HTML.page(title: "404", language: language, session: session, body: HTML.notice(Strings.text(.notFound, language))),
                    status: .notFound)
    }

    func requestPage(_ request: Request, _ session: Catalog.Session, id: String, notice: String? = nil,
                     status: HTTPResponse.Status = .ok) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        guard let r = try await footageRequest(id) else { return Self.notFound(request, session) }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let clips = try await clips(in: FootageRange(r))
        let arrivedBytes = clips.reduce(Int64(0)) { $0 + $1.bytes }
        let clipSeconds = clips.reduce(0.0) { $0 + $1.end.seconds(since: $1.start) }
        let pendingSeconds = r.coverage.filter { $0.status == .pending }.reduce(0.0) { $0 + $1.to.seconds(since: $1.from) }
        let rate = try await catalog.devices().first { $0.id == r.device }?.health?.uploadBytesPerSecond ?? 0
        var progress = "\(local.bytes(arrivedBytes)) \(t(.arrived))"
        if pendingSeconds > 0 {
            if clipSeconds > 0, rate > 0 {
                let left = pendingSeconds * (Double(arrivedBytes) / clipSeconds) / rate
                progress += ", \(t(.timeLeft)) \(local.elapsed(left))"
            } else {
                progress += ", \(t(.unknownRate))"
            }
        }
        let proofText: String, proofClass: String
        switch try await catalog.proof(device: r.device, from: r.from, to: r.to) {
        case .none: (proofText, proofClass) = (t(.proofNone), "none")
        case .waiting: (proofText, proofClass) = (t(.proofWaiting), "waiting")
        case .whole(let at): (proofText, proofClass) = (t(.proofWhole) + " " + local.dateTime(at, seconds: true), "whole")
        }
        // Refreshed while footage or the seal chain is still on its way.
        let open = r.state == .waiting || r.state == .accepted || (proofClass == "waiting" && !clips.isEmpty)
        let preview = try await previewSection(r, request: request, session: session, local: local, language: language)
        // Not while the officer picks a part to narrow to: a reload would lose what is typed.
        let picking = request.uri.queryParameters["nfrom"] != nil || request.uri.queryParameters["nto"] != nil || notice != nil
        let noticeHTML = notice.map { HTML.notice($0) }
            ?? (request.uri.queryParameters["narrowed"] != nil ? HTML.notice(Strings.text(.narrowed, language), kind: "info") : "")
        let legend = CoverageSpan.Status.allCases.map { "<span class=\"key \($0.rawValue)\">\(t(Self.coverageKey($0)))</span>" }.joined(separator: " ")
        let body = """
            <h1>\(t(.requests)): \(HTML.escape(r.device))</h1>
            \(noticeHTML)
            <dl class="facts">
            <dt>\(t(.from)) – \(t(.to))</dt><dd>\(local.span(r.from, r.to))</dd>
            <dt>\(t(.reason))</dt><dd>\(HTML.escape(r.reason ?? ""))</dd>
            <dt>\(t(.requestState))</dt><dd class="state \(r.state.rawValue)" id="state">\(t(Self.stateKey(r.state)))\(r.error.map { " — " + HTML.escape($0) } ?? "")</dd>
            <dt>\(t(.requested))</dt><dd>\(local.dateTime(r.createdAt))</dd>
            <dt>\(t(.coverage))</dt><dd id="progress">\(progress)</dd>
            <dt>\(t(.proof))</dt><dd id="proof" class="proof \(proofClass)">\(proofText)</dd>
            </dl>
            <div class="coverage">\(Self.bar(r))\(local.axis(r.from, r.to))
            <p class="activity-label">\(t(.activity))</p>\(try await activityStrip(device: r.device, from: r.from, to: r.to, language: language))
            <p class="legend">\(legend)</p></div>
            <div class="actions"><a class="button" href="/requests/\(HTML.escape(r.id))/play">\(t(.play))</a>
            <form method="post" action="/requests/\(HTML.escape(r.id))/evidence"><input type="hidden" name="csrf" value="\(HTML.escape(session.csrf))">
            <button type="submit">\(t(.takeEvidence))</button></form></div>
            \(open && !picking ? "<p class=\"hint\">\(t(.refreshing))</p>" : "")
            \(preview)
            """
        return Self.html(HTML.page(title: Strings.text(.requests, language), language: language, session: session,
                                   refreshSeconds: open && !picking ? Self.refreshSeconds : nil, body: body), status: status)
    }

    /// The coverage as a bar: one SVG rectangle per span, coloured by the stylesheet (no inline
    /// style), proportional to its time.
    static func bar(_ r: Catalog.Request) -> String {
        let total = max(r.to.seconds(since: r.from), 0.001)
        var rects = ""
        let spans = r.coverage.isEmpty ? [CoverageSpan(from: r.from, to: r.to, status: .pending)] : r.coverage
        for span in spans {
            let x = max(0, span.from.seconds(since: r.from)) / total * 1000
            let w = max(0, span.to.seconds(since: span.from)) / total * 1000
            rects += "<rect class=\"\(span.status.rawValue)\" x=\"\(String(format: "%.2f", x))\" y=\"0\" width=\"\(String(format: "%.2f", w))\" height=\"20\"/>"
        }
        return "<svg class=\"bar\" viewBox=\"0 0 1000 20\" preserveAspectRatio=\"none\" role=\"img\">\(rects)</svg>"
    }

    /// When something moved, a bar a minute (what the boxes' heartbeats brought): tall where
    /// something moved, as tall as the busiest moment; a low grey bar where the box recorded and
    /// nothing moved; nothing where it knows nothing. Coloured by the stylesheet.
    func activityStrip(device: String, from: Timestamp, to: Timestamp, language: Language) async throws -> String {
        let minutes = try await catalog.activity(device: device, from: from, to: to)
        let label = HTML.escape(Strings.text(.activity, language))
        guard !minutes.isEmpty else { return "<p class=\"activity none\">\(HTML.escape(Strings.text(.activityNone, language)))</p>" }
        let total = max(to.seconds(since: from), 60)
        let width = max(0.5, 60 / total * 1000)
        var rects = ""
        // Still minutes first, movement over them; a moment of movement in a day's strip (a
        // minute is under a pixel there) is drawn at least 1 % wide so it can be seen.
        for (minute, level) in minutes.sorted(by: { $0.level < $1.level }) {
            let x = max(0, minute.seconds(since: from)) / total * 1000
            let h = level == 0 ? 2 : 4 + Double(level) / 254 * 16
            let w = level == 0 ? width : max(width, 10)
            rects += "<rect class=\"\(level == 0 ? "still" : "moved")\" x=\"\(String(format: "%.2f", min(x, 1000 - w)))\" y=\"\(String(format: "%.1f", 20 - h))\" width=\"\(String(format: "%.2f", w))\" height=\"\(String(format: "%.1f", h))\"/>"
        }
        return "<svg class=\"activity\" viewBox=\"0 0 1000 20\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"\(label)\">\(rects)</svg>"
    }

    static func stateKey(_ s: Catalog.Request.State) -> Key {
        switch s {
        case .waiting: .stateWaiting
        case .accepted: .stateAccepted
        case .complete: .stateComplete
        case .refused: .stateRefused
        }
    }

    static func coverageKey(_ s: CoverageSpan.Status) -> Key {
        switch s {
        case .uploaded: .covUploaded
        case .pending: .covPending
        case .notRecorded: .covNotRecorded
        case .evicted: .covEvicted
        }
    }
}
