import Commune
import Foundation
import Hummingbird
import NIOCore
import Wire

/// The audit log on the desk: the chain of custody a court asks for. Only an officer in charge
/// (`commune operators add NAME --chief`) reads it, on the page or as CSV; reading and exporting
/// it are audited too.
extension Desk {
    /// Entries on one page of the log (and in one read of the export, which reads them all).
    static let maxAuditEntries = 5000

    func registerAudit<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("audit") { request, context in
            try await self.withSession(request) { session in try await self.auditPage(request, session, address: self.address(request, context)) }
        }
        router.get("audit.csv") { request, context in
            try await self.withSession(request) { session in try await self.auditCSV(request, session, address: self.address(request, context)) }
        }
    }

    func onlyChief(_ request: Request, _ session: Catalog.Session) -> Response? {
        guard !session.chief else { return nil }
        let language = Self.language(request)
        return Self.html(HTML.page(title: Strings.text(.audit, language), language: language, session: session,
                                   body: HTML.notice(Strings.text(.auditOnlyChief, language))), status: .forbidden)
    }

    func auditPage(_ request: Request, _ session: Catalog.Session, address: String) async throws -> Response {
        if let refused = onlyChief(request, session) { return refused }
        let language = Self.language(request)
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let query = request.uri.queryParameters
        // Pages of `maxAuditEntries`, newest first, each going on from the last entry shown; and
        // the officers' own actions alone, which no stranger's refused sign-ins can push out.
        let before = query["before"].flatMap { Int64(String($0)) }.flatMap { $0 > 0 ? $0 : nil }
        let officers = query["only"] == "officers"
        try await catalog.audit(operator: session.operator, address: address, action: "audit viewed")
        let entries = try await catalog.auditLog(limit: Self.maxAuditEntries, before: before, officersOnly: officers)
        let rows = entries.map { e in
            "<tr><td>\(local.dateTime(e.at))</td><td>\(HTML.escape(e.operator ?? "—"))</td><td>\(HTML.escape(e.address))</td>"
                + "<td>\(HTML.escape(Self.actionName(e.action, language)))\(e.count > 1 ? " <b class=\"count\">×\(e.count)</b>" : "")</td><td>\(HTML.escape(e.detail))</td></tr>"
        }.joined(separator: "\n")
        let filter = officers ? "&amp;only=officers" : ""
        let next = entries.count == Self.maxAuditEntries ? "<p><a class=\"button\" href=\"/audit?before=\(entries.last?.id ?? 0)\(filter)\">\(t(.olderEntries))</a></p>" : ""
        let body = """
            <h1>\(t(.audit))</h1><p>\(t(.auditIntro))</p>
            <p><a class="button" href="/audit.csv">\(t(.exportCSV))</a>
            <a href="\(officers ? "/audit" : "/audit?only=officers")">\(t(officers ? .auditEverything : .auditOfficersOnly))</a></p>
            <div class="scroll"><table class="list audit"><thead><tr><th>\(t(.when))</th><th>\(t(.who))</th><th>\(t(.address))</th><th>\(t(.action))</th>
            <th>\(t(.detail))</th></tr></thead><tbody>
            \(rows)
            </tbody></table></div>\(next)
            """
        return Self.html(HTML.page(title: Strings.text(.audit, language), language: language, session: session, body: body), status: .ok)
    }

    /// The whole log as CSV, newest first, streamed a page at a time (it can be long; nothing of
    /// it is held whole in memory): nothing an officer did is left out of the export.
    func auditCSV(_ request: Request, _ session: Catalog.Session, address: String) async throws -> Response {
        if let refused = onlyChief(request, session) { return refused }
        try await catalog.audit(operator: session.operator, address: address, action: "audit exported")
        var headers = Self.securityHeaders(contentType: "text/csv; charset=utf-8")
        headers[.contentDisposition] = "attachment; filename=\"junction-audit-\(Timestamp.now().compact).csv\""
        let catalog = self.catalog
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // A UTF-8 byte order mark, so a spreadsheet opens Vietnamese text right.
            try await writer.write(ByteBuffer(string: "\u{FEFF}time_utc,operator,address,action,detail,count\r\n"))
            var before: Int64? = nil
            while true {
                let page = try await catalog.auditLog(limit: Self.maxAuditEntries, before: before)
                guard let last = page.last else { break }
                var csv = ""
                for e in page {
                    csv += [e.at.description, e.operator ?? "", e.address, e.action, e.detail, String(e.count)].map(Self.csvField).joined(separator: ",") + "\r\n"
                }
                try await writer.write(ByteBuffer(string: csv))
                before = last.id
            }
            try await writer.finish(nil)
        })
    }

    /// An action as the page shows it (stored, and exported, in English).
    static func actionName(_ action: String, _ language: Language) -> String {
        guard language == .vi else { return action }
        let vi = ["sign-in": "Đăng nhập", "sign-in refused": "Đăng nhập bị từ chối", "sign-in throttled": "Đăng nhập bị chặn tạm thời",
                  "sign-out": "Đăng xuất", "request": "Yêu cầu trích xuất", "request narrowed": "Thu hẹp yêu cầu", "view": "Xem phim", "evidence made": "Tạo gói chứng cứ",
                  "download": "Tải về", "download refused": "Tải về bị từ chối (tệp đã bị thay đổi)", "audit viewed": "Xem nhật ký", "audit exported": "Tải nhật ký",
                  "password changed": "Đổi mật khẩu", "password change refused": "Đổi mật khẩu bị từ chối",
                  "password set by the server's administrator": "Quản trị viên đặt mật khẩu"]
        return vi[action] ?? action
    }

    /// One CSV field, quoted; a field a spreadsheet would run as a formula (=, +, -, @, tab, CR)
    /// is prefixed with ' so it stays text.
    static func csvField(_ value: String) -> String {
        var v = value
        if let first = v.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { v = "'" + v }
        return "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
