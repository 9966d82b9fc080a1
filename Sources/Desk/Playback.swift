import Commune
import Evidence
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Wire

/// Playing footage in the browser. The clips are fragmented MP4 that browsers play as they are,
/// so the page plays a range clip after clip in one `<video>` (a small script, /desk.js), with
/// the wall-clock time of the frame on screen beside it and the gaps between clips shown as gaps;
/// a click on the timeline or a clip seeks there. Clips are served with byte ranges (seeking in
/// a long clip reads only what is needed). Nothing is transcoded or rebuilt on the server: what
/// plays is byte for byte what the box sent, whose sha256 the catalog holds.
extension Desk {
    /// A pause between two clips longer than this is drawn as a gap.
    static let gapSeconds = 1.5
    /// Clips on one page (a 31-day request of 10 s clips would be 270 000: the page says so).
    static let maxClipsPerPage = 2000

    func registerPlayback<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("requests/:id/play") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await self.withSession(request) { session in try await self.requestPlayPage(request, session, id: id, address: self.address(request, context)) }
        }
        router.get("clips/:id") { request, context in
            let id = Int64(context.parameters.get("id") ?? "") ?? -1
            return try await self.withSession(request) { session in
                try await self.serveClip(request, session, id: id, context: context)
            }
        }
        // HEAD: what GET would answer, headers only (a player asks the size before it seeks).
        router.head("clips/:id") { request, context in
            let id = Int64(context.parameters.get("id") ?? "") ?? -1
            return try await self.withSession(request) { session in
                try await self.serveClip(request, session, id: id, context: context, headOnly: true)
            }
        }
        router.get("desk.js") { _, _ in
            Response(status: .ok, headers: Self.securityHeaders(contentType: "text/javascript; charset=utf-8", cache: "max-age=3600"),
                     body: .init(byteBuffer: ByteBuffer(string: DeskAssets.script)))
        }
    }

    /// A request's footage: its range, with the way back to the request and its evidence button.
    func requestPlayPage(_ request: Request, _ session: Catalog.Session, id: String, address: String) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        guard let r = try await footageRequest(id) else { return Self.notFound(request, session) }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let back = """
            <a href="/requests/\(HTML.escape(r.id))">← \(t(.requests))</a> · \(local.span(r.from, r.to)) · \(HTML.escape(r.reason ?? ""))
            """
        let evidence = """
            <form method="post" action="/requests/\(HTML.escape(r.id))/evidence"><input type="hidden" name="csrf" value="\(HTML.escape(session.csrf))">
            <button type="submit">\(t(.takeEvidence))</button></form>
            """
        return try await playPage(request, session, range: FootageRange(r), title: "\(t(.play)): \(HTML.escape(r.device))", back: back,
                                  top: "", evidenceForm: evidence, address: address)
    }

    /// Plays a range clip after clip: the player, its timeline, the list of clips and gaps.
    /// `title`, `back`, `top` and `evidenceForm` are HTML already escaped by the caller.
    func playPage(_ request: Request, _ session: Catalog.Session, range r: FootageRange, title: String, back: String, top: String,
                  evidenceForm: String, address: String) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let all = try await clips(in: r)
        let clips = Array(all.prefix(Self.maxClipsPerPage))
        try await catalog.audit(operator: session.operator, address: address, action: "view",
                                detail: "\(r.label) \(r.device) \(r.from)–\(r.to) \(clips.count) clips")
        let total = max(r.to.seconds(since: r.from), 0.001)
        let lost = try await lostSeconds(clips, device: r.device)
        var items = "", rects = "", previousEnd = r.from
        for c in clips {
            if c.start.seconds(since: previousEnd) > Self.gapSeconds {
                items += "<li class=\"gap\">\(t(.gap)) \(local.span(previousEnd, c.start))</li>\n"
            }
            let x = max(0, c.start.seconds(since: r.from)) / total * 1000
            let w = max(0.5, c.end.seconds(since: c.start) / total * 1000)
            rects += "<rect class=\"uploaded clip\" data-clip=\"\(c.id)\" x=\"\(String(format: "%.2f", x))\" y=\"0\" width=\"\(String(format: "%.2f", w))\" height=\"20\"/>"
            items += """
                <li><a href="/clips/\(c.id)" data-clip="\(c.id)" data-start-ms="\(c.start.milliseconds)" data-end-ms="\(c.end.milliseconds)">\
                \(local.span(c.start, c.end))</a> <small>\(HTML.escape(c.camera)) · \(local.bytes(c.bytes)) · sha256 \
                <code>\(HTML.escape(String(c.sha256.prefix(16))))…</code></small>\(damageNote(c, lost: lost[c.id], local: local, t: t))</li>

                """
            previousEnd = max(previousEnd, c.end)
        }
        if r.to.seconds(since: previousEnd) > Self.gapSeconds, !clips.isEmpty {
            items += "<li class=\"gap\">\(t(.gap)) \(local.span(previousEnd, r.to))</li>\n"
        }
        let offsetMinutes = configuration.timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(r.from.milliseconds) / 1000)) / 60
        let player = clips.isEmpty ? "<p>\(t(.noClipsYet))</p>" : """
            <div class="player" id="player" data-offset-minutes="\(offsetMinutes)" data-from-ms="\(r.from.milliseconds)" data-to-ms="\(r.to.milliseconds)">
            <video id="video" controls preload="metadata" playsinline src="/clips/\(clips[0].id)"></video>
            <p class="clock"><span class="label">\(t(.wallClock))</span> <b id="clock">\(local.dateTime(clips[0].start))</b></p>
            <svg class="bar timeline" id="timeline" viewBox="0 0 1000 20" preserveAspectRatio="none">\(rects)<rect id="cursor" x="0" y="0" width="2" height="20"/></svg>
            \(local.axis(r.from, r.to))
            </div>
            """
        let more = all.count > clips.count ? HTML.notice("\(all.count - clips.count) …", kind: "info") : ""
        let body = """
            <h1>\(title)</h1>
            <p>\(back)</p>
            \(top)
            \(player)
            \(clips.isEmpty ? "" : "<div class=\"actions\">\(evidenceForm)</div>")
            <ol class="clips" id="clips">
            \(items)</ol>\(more)
            <script src="/desk.js"></script>
            """
        return Self.html(HTML.page(title: Strings.text(.play, language), language: language, session: session, body: body), status: .ok)
    }

    /// The seconds each clip the box's card damaged has lost (issue 22), from its sealed record
    /// and its fragments as they arrived (`FragmentMap`): read only for the page's damaged clips.
    func lostSeconds(_ clips: [Catalog.Clip], device: String) async throws -> [Int64: FragmentDamage] {
        var out: [Int64: FragmentDamage] = [:]
        for c in clips where c.proof == ClipProof.Status.damaged.rawValue {
            guard let seq = c.chainSeq,
                  let record = try await catalog.chainRecords(device: device, from: c.start, to: c.end).compactMap(\.record).first(where: { $0.seq == seq })
            else { continue }
            let path = c.path
            out[c.id] = try await Self.blocking { FragmentMap.damage(path: path, record: record) }
        }
        return out
    }

    /// A damaged clip's line under it: what was lost, in the desk's time zone.
    func damageNote(_ c: Catalog.Clip, lost: FragmentDamage?, local: LocalForm, t: (Key) -> String) -> String {
        guard c.proof == ClipProof.Status.damaged.rawValue else { return "" }
        guard let lost, !lost.lost.isEmpty else { return "<br><span class=\"damaged\">⚠ \(t(.damagedWhole))</span>" }
        let spans = lost.lost.prefix(FragmentMap.maxRunsNamed).map { local.span($0.from, $0.to) }.joined(separator: ", ")
            + (lost.lost.count > FragmentMap.maxRunsNamed ? " …" : "")
        return "<br><span class=\"damaged\">⚠ \(t(.damagedOnCard)) \(HTML.escape(spans))</span>"
    }

    /// One clip's bytes, whole or a single byte range (`Range: bytes=a-b`, `a-`, `-n`). As RFC
    /// 9110 says: a Range header that is not valid, or asks for several ranges, is ignored (200,
    /// the whole clip); a valid one outside the clip gets 416.
    func serveClip<Context: RequestContext>(_ request: Request, _ session: Catalog.Session, id: Int64, context: Context,
                                            headOnly: Bool = false) async throws -> Response {
        guard id > 0, let clip = try await catalog.clip(id: id) else { return Response(status: .notFound) }
        var info = stat()
        guard stat(clip.path, &info) == 0 else { return Response(status: .notFound) }
        let size = Int(info.st_size)
        var headers = Self.securityHeaders(contentType: "video/mp4", cache: "private, max-age=3600")
        headers[.acceptRanges] = "bytes"
        headers[HTTPField.Name("X-Content-SHA256")!] = clip.sha256
        switch request.headers[.range].map({ Self.byteRange($0, size: size) }) ?? .ignored {
        case .ignored:
            headers[.contentLength] = String(size)
            if headOnly { return Response(status: .ok, headers: headers) }
            return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: clip.path, context: context))
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(size)"
            return Response(status: .rangeNotSatisfiable, headers: headers)
        case .range(let range):
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
            headers[.contentLength] = String(range.count)
            if headOnly { return Response(status: .partialContent, headers: headers) }
            return Response(status: .partialContent, headers: headers,
                            body: try await FileIO().loadFile(path: clip.path, range: range, context: context))
        }
    }

    enum ByteRange: Equatable {
        /// Not a valid single byte range: answered as if there were none.
        case ignored
        case unsatisfiable
        case range(ClosedRange<Int>)
    }

    /// What a Range header asks of a file of `size` bytes. Positions are plain digits (no sign,
    /// no space), at most 18 of them, so no header can overflow the arithmetic.
    static func byteRange(_ header: String, size: Int) -> ByteRange {
        guard header.utf8.count <= 100, header.lowercased().hasPrefix("bytes=") else { return .ignored }
        let spec = header.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .ignored }
        func number(_ s: Substring) -> Int? {
            guard !s.isEmpty, s.utf8.count <= 18, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int(s)
        }
        let a = spec[..<dash], b = spec[spec.index(after: dash)...]
        if a.isEmpty {
            guard let n = number(b) else { return .ignored }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .range(max(0, size - n)...(size - 1))
        }
        guard let start = number(a) else { return .ignored }
        let end: Int
        if b.isEmpty { end = size - 1 } else {
            guard let e = number(b), e >= start else { return .ignored }
            end = e
        }
        guard start < size else { return .unsatisfiable }
        return .range(start...min(end, size - 1))
    }
}
