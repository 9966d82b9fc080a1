import Commune
import Foundation
import Hummingbird
import Wire

/// A stretch of one box's footage that the desk plays or packs as evidence: a request's range,
/// or any range of the clips a box has already sent, typed by the officer on the box's page.
struct FootageRange: Sendable {
    var device: String
    var camera: String?
    var from: Timestamp
    var to: Timestamp
    var reason: String?
    /// The footage request's id, when the range is one.
    var request: String?

    init(device: String, camera: String? = nil, from: Timestamp, to: Timestamp, reason: String? = nil, request: String? = nil) {
        self.device = device
        self.camera = camera
        self.from = from
        self.to = to
        self.reason = reason
        self.request = request
    }

    init(_ r: Catalog.Request) {
        self.init(device: r.device, camera: r.camera, from: r.from, to: r.to, reason: r.reason, request: r.id)
    }

    /// How the audit log and the evidence folder name it.
    var label: String { request ?? "\(device)-\(from.compact)" }
}

extension Desk {
    /// The range a box's page shows when none is asked for: the last hour of what arrived.
    static let defaultBoxRangeSeconds: Int64 = 3600

    func registerBoxFootage<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("boxes/:device/play") { request, context in
            let device = context.parameters.get("device") ?? ""
            return try await self.withSession(request) { session in
                try await self.boxPlayPage(request, session, device: device, address: self.address(request, context))
            }
        }
        router.post("boxes/:device/evidence") { request, context in
            let device = context.parameters.get("device") ?? ""
            return try await self.withSession(request) { session in
                try await self.makeBoxEvidence(request, session, device: device, address: self.address(request, context))
            }
        }
    }

    /// The clips that arrived for a range (and camera), oldest first.
    func clips(in range: FootageRange) async throws -> [Catalog.Clip] {
        try await catalog.clips(device: range.device)
            .filter { $0.end > range.from && $0.start < range.to && (range.camera == nil || $0.camera == range.camera) }
            .sorted { $0.start < $1.start }
    }

    /// A box's footage as it arrived, any range: `?from=…&to=…` typed in the local form, or the
    /// last hour of what arrived. A form at the top changes the range; a wrong date says so and
    /// shows the default.
    func boxPlayPage(_ request: Request, _ session: Catalog.Session, device: String, address: String) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        guard PlainName.isValid(device), try await catalog.devices().contains(where: { $0.id == device }) else {
            return Self.notFound(request, session)
        }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let query = request.uri.queryParameters
        // A GET form sends a space as "+" (no date holds a "+" of its own).
        let typed = { (k: Substring) in query[k].map { String($0).replacingOccurrences(of: "+", with: " ") } ?? "" }
        let typedFrom = typed("from"), typedTo = typed("to")
        var notice: String?
        var range: FootageRange?
        if !typedFrom.isEmpty || !typedTo.isEmpty {
            if let from = local.parse(typedFrom), let to = local.parse(typedTo) {
                if to <= from { notice = Strings.text(.rangeEmpty, language) }
                else if to.seconds(since: from) > Self.maxRequestSeconds { notice = Strings.text(.rangeTooLong, language) }
                else { range = FootageRange(device: device, from: from, to: to) }
            } else {
                notice = Strings.text(.badDate, language)
            }
        }
        if range == nil {
            let arrived = try await catalog.clips(device: device)
            let end = arrived.map(\.end).max() ?? Timestamp.now()
            let start = max(arrived.map(\.start).min() ?? end, Timestamp(milliseconds: end.milliseconds - Self.defaultBoxRangeSeconds * 1000))
            range = FootageRange(device: device, from: start, to: end)
        }
        let r = range!
        let picker = """
            <form class="range" method="get" action="/boxes/\(HTML.escape(device))/play">
            <label>\(t(.from)) <input name="from" value="\(HTML.escape(notice == nil ? local.dateTime(r.from, seconds: true) : typedFrom))" placeholder="\(t(.dateHint))" required maxlength="40" inputmode="numeric"></label>
            <label>\(t(.to)) <input name="to" value="\(HTML.escape(notice == nil ? local.dateTime(r.to, seconds: true) : typedTo))" placeholder="\(t(.dateHint))" required maxlength="40" inputmode="numeric"></label>
            <button type="submit">\(t(.show))</button></form>
            \(notice.map { HTML.notice($0) } ?? "")
            <p class="activity-label">\(t(.activity))</p>\(try await activityStrip(device: device, from: r.from, to: r.to, language: language))\(local.axis(r.from, r.to))
            """
        let evidence = """
            <form method="post" action="/boxes/\(HTML.escape(device))/evidence"><input type="hidden" name="csrf" value="\(HTML.escape(session.csrf))">
            <input type="hidden" name="from_ms" value="\(r.from.milliseconds)"><input type="hidden" name="to_ms" value="\(r.to.milliseconds)">
            <button type="submit">\(t(.takeEvidence))</button></form>
            """
        return try await playPage(request, session, range: r, title: "\(t(.boxFootage)): \(HTML.escape(device))",
                                  back: "<a href=\"/boxes\">← \(t(.boxes))</a>", top: picker, evidenceForm: evidence, address: address)
    }

    struct BoxEvidenceForm: Decodable {
        var csrf: String
        var from_ms: Int64
        var to_ms: Int64
    }

    func makeBoxEvidence(_ request: Request, _ session: Catalog.Session, device: String, address: String) async throws -> Response {
        let language = Self.language(request)
        guard let form = try await Self.form(BoxEvidenceForm.self, request), Self.same(form.csrf, session.csrf) else {
            return Self.forbidden(request, session)
        }
        guard PlainName.isValid(device), try await catalog.devices().contains(where: { $0.id == device }) else {
            return Self.notFound(request, session)
        }
        // Bounded where the form is read (issue 22: −2^63 and 2^63−1 trapped the server).
        guard let from = Timestamp(validMilliseconds: form.from_ms), let to = Timestamp(validMilliseconds: form.to_ms) else {
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session,
                                       body: HTML.notice(Strings.text(.badDate, language))), status: .badRequest)
        }
        guard to > from, to.seconds(since: from) <= Self.maxRequestSeconds else {
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session,
                                       body: HTML.notice(Strings.text(to > from ? .rangeTooLong : .rangeEmpty, language))), status: .badRequest)
        }
        return try await makeEvidence(request, session, range: FootageRange(device: device, from: from, to: to), address: address)
    }
}
