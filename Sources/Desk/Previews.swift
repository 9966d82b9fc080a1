import Commune
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Wire

/// A request's preview on the desk (issue 14): the keyframes the box sent before its video, as a
/// contact sheet in time order, growing while they arrive; and narrowing the request to the
/// part that matters, picked under the pictures, so the box stops sending the rest.
extension Desk {
    /// Bound on the pictures one page shows (a preview holds at most `PreviewSheet.Limits.maxPictures`).
    static let maxSheetPictures = PreviewSheet.Limits.maxPictures

    func registerPreviews<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("requests/:id/preview/:offset") { request, context in
            let id = context.parameters.get("id") ?? "", offset = context.parameters.get("offset").flatMap { Int($0) }
            return try await self.withSession(request) { session in try await self.previewPicture(request, session, id: id, offset: offset) }
        }
        router.post("requests/:id/narrow") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await self.withSession(request) { session in try await self.narrowRequest(request, session, id: id, address: self.address(request, context)) }
        }
    }

    /// The preview's pictures now, in time order, and whether all have arrived (nil: none sent yet).
    func previewPictures(_ id: String) async throws -> (entries: [PreviewSheet.Entry], complete: Bool, file: Catalog.PreviewFile)? {
        guard let file = try await catalog.preview(request: id) else { return nil }
        let scan = try await Self.blocking { try file.scan() }
        return (scan.entries.sorted { $0.at < $1.at }, file.complete, file)
    }

    /// One picture, named by where it lies in the file (stable while the file grows, so the
    /// browser keeps it cached across the page's refreshes).
    func previewPicture(_ request: Request, _ session: Catalog.Session, id: String, offset: Int?) async throws -> Response {
        guard let r = try await footageRequest(id), let offset, let preview = try await previewPictures(r.id),
              let entry = preview.entries.first(where: { $0.offset == offset }) else { return Self.notFound(request, session) }
        let file = preview.file
        let jpeg = try await Self.blocking { try file.jpeg(entry) }
        var headers = Self.securityHeaders(contentType: "image/jpeg", cache: "private, max-age=3600")
        headers[.contentLength] = String(jpeg.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: jpeg)))
    }

    /// The preview section of a request's page: the sheet, and the narrowing form with what was
    /// picked under the pictures (`nfrom`, `nto`: milliseconds) filled in.
    func previewSection(_ r: Catalog.Request, request: Request, session: Catalog.Session, local: LocalForm, language: Language) async throws -> String {
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let query = request.uri.queryParameters
        let pickedFrom = query["nfrom"].flatMap { Int64(String($0)) }.flatMap(Timestamp.init(validMilliseconds:))
        let pickedTo = query["nto"].flatMap { Int64(String($0)) }.flatMap(Timestamp.init(validMilliseconds:))
        let base = "/requests/\(HTML.escape(r.id))"
        let canNarrow = r.state != .complete
        var sheet = ""
        var status = "<p class=\"hint\" id=\"preview-state\">\(t(.previewNone))</p>"
        if let preview = try await previewPictures(r.id) {
            let entries = Array(preview.entries.prefix(Self.maxSheetPictures))
            status = "<p class=\"hint\" id=\"preview-state\" data-pictures=\"\(entries.count)\">\(entries.count) \(t(preview.complete ? .previewComplete : .previewArriving))</p>"
            for (i, e) in entries.enumerated() {
                // "To here" ends at the next picture (the moment shown lasts until then).
                let next = i + 1 < entries.count ? entries[i + 1].at : min(r.to, e.at + 2)
                func link(_ from: Timestamp?, _ to: Timestamp?) -> String {
                    var q: [String] = []
                    if let from { q.append("nfrom=\(from.milliseconds)") }
                    if let to { q.append("nto=\(to.milliseconds)") }
                    return base + "?" + q.joined(separator: "&amp;") + "#narrow"
                }
                let chosen = (pickedFrom.map { e.at >= $0 } ?? false) && (pickedTo.map { e.at < $0 } ?? true)
                sheet += """
                    <figure\(chosen ? " class=\"chosen\"" : "")><img src="\(base)/preview/\(e.offset)" alt="\(local.dateTime(e.at, seconds: true))" loading="lazy" width="320" height="180">
                    <figcaption><span>\(String(local.dateTime(e.at, seconds: true).suffix(8)))</span>
                    \(canNarrow ? "<a href=\"\(link(e.at, pickedTo))\">\(t(.fromHere))</a><a href=\"\(link(pickedFrom, next))\">\(t(.toHere))</a>" : "")</figcaption></figure>

                    """
            }
        }
        let form = canNarrow ? """
            <p class="hint">\(t(.narrowHint))</p>
            <form class="narrow" id="narrow" method="post" action="\(base)/narrow">
            <input type="hidden" name="csrf" value="\(HTML.escape(session.csrf))">
            <label>\(t(.from)) <input name="from" value="\(local.dateTime(pickedFrom ?? r.from, seconds: true))" required maxlength="40" inputmode="numeric"></label>
            <label>\(t(.to)) <input name="to" value="\(local.dateTime(pickedTo ?? r.to, seconds: true))" required maxlength="40" inputmode="numeric"></label>
            <button type="submit">\(t(.narrow))</button></form>
            """ : ""
        return """
            <section class="preview"><h2>\(t(.preview))</h2>\(status)
            \(sheet.isEmpty ? "" : "<div class=\"sheet\">\(sheet)</div>")
            \(form)</section>
            """
    }

    struct NarrowForm: Decodable {
        var csrf: String
        var from: String
        var to: String
    }

    func narrowRequest(_ request: Request, _ session: Catalog.Session, id: String, address: String) async throws -> Response {
        let language = Self.language(request)
        guard let r = try await footageRequest(id) else { return Self.notFound(request, session) }
        guard let form = try await Self.form(NarrowForm.self, request), Self.same(form.csrf, session.csrf) else {
            return Self.forbidden(request, session)
        }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        guard let from = local.parse(form.from), let to = local.parse(form.to) else {
            return try await requestPage(request, session, id: id, notice: Strings.text(.badDate, language), status: .badRequest)
        }
        do {
            _ = try await catalog.narrow(request: r.id, from: from, to: to)
        } catch let error as Catalog.NarrowError {
            let key: Key
            switch error {
            case .settled: key = .narrowSettled
            case .outside, .noRequest: key = .narrowOutside
            }
            return try await requestPage(request, session, id: id, notice: Strings.text(key, language), status: .badRequest)
        }
        try await catalog.audit(operator: session.operator, address: address, action: "request narrowed",
                                detail: "\(r.id) \(r.device) \(r.from)–\(r.to) → \(from)–\(to)")
        logger.notice("desk: request narrowed", metadata: ["id": "\(r.id)", "by": "\(session.operator)"])
        return Self.redirect("/requests/" + r.id + "?narrowed=1")
    }
}
