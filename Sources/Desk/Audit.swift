import Commune
import Foundation
import Hummingbird
import NIOCore
import Wire

/// The audit log on the desk: the chain of custody a court asks for. Only an officer in charge
/// (`commune operators add NAME --chief`) reads it, on the page or as CSV; reading and exporting
/// it are audited too.
extension Desk {
    /// Entries shown on the page and in one export.
    static let maxAuditEntries = 5000

    func registerAudit<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.get("audit") { request, context in
            try await self.withSession(request) { session in try await self.auditPage(request, session, address: Self.address(context)) }
        }
        router.get("audit.csv") { request, context in
            try await self.withSession(request) { session in try await self.auditCSV(request, session, address: Self.address(context)) }
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
        try await catalog.audit(operator: session.operator, address: address, action: "audit viewed")
        let entries = try await catalog.auditLog(limit: Self.maxAuditEntries)
        let rows = entries.map { e in
            "<tr><td>\(local.dateTime(e.at))</td><td>\(HTML.escape(e.operator ?? "—"))</td><td>\(HTML.escape(e.address))</td>"
                + "<td>\(HTML.escape(Self.actionName(e.action, language)))</td><td>\(HTML.escape(e.detail))</td></tr>"
        }.joined(separator: "\n")
        let body = """
            <h1>\(t(.audit))</h1><p>\(t(.auditIntro))</p><p><a class="button" href="/audit.csv">\(t(.exportCSV))</a></p>
            <div class="scroll"><table class="list audit"><thead><tr><th>\(t(.when))</th><th>\(t(.who))</th><th>\(t(.address))</th><th>\(t(.action))</th>
            <th>\(t(.detail))</th></tr></thead><tbody>
            \(rows)
            </tbody></table></div>
            """
        return Self.html(HTML.page(title: Strings.text(.audit, language), language: language, session: session, body: body), status: .ok)
    }

    func auditCSV(_ request: Request, _ session: Catalog.Session, address: String) async throws -> Response {
        if let refused = onlyChief(request, session) { return refused }
        try await catalog.audit(operator: session.operator, address: address, action: "audit exported")
        let entries = try await catalog.auditLog(limit: Self.maxAuditEntries)
        var csv = "time_utc,operator,address,action,detail\r\n"
        for e in entries {
            csv += [e.at.description, e.operator ?? "", e.address, e.action, e.detail].map(Self.csvField).joined(separator: ",") + "\r\n"
        }
        var headers = Self.securityHeaders(contentType: "text/csv; charset=utf-8")
        headers[.contentDisposition] = "attachment; filename=\"junction-audit-\(Timestamp.now().compact).csv\""
        // A UTF-8 byte order mark, so a spreadsheet opens Vietnamese text right.
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "\u{FEFF}" + csv)))
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
