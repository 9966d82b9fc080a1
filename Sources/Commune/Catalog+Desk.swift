import SystemCrypto
import SQLiteNIO
import Wire

/// What the police desk (the web page) keeps: operators' passwords (bcrypt hashes made by the
/// caller), sign-in sessions (a random cookie of which only the SHA-256 is stored, its CSRF
/// token, an absolute and an idle expiry) and the audit log: who did what, when, from where.
extension Catalog {
    public struct Credentials: Sendable, Equatable {
        public var name: String
        public var passwordBcrypt: String?
        public var oneTime: Bool
        public var chief: Bool
    }

    /// Sets an operator's password hash; `oneTime` makes the next sign-in ask for a new one.
    /// False when there is no such operator.
    @discardableResult
    public func setPassword(operator name: String, bcrypt: String, oneTime: Bool) async throws -> Bool {
        try await query("UPDATE operator SET password_bcrypt = ?, password_one_time = ? WHERE name = ? RETURNING name",
                        [.text(bcrypt), .integer(oneTime ? 1 : 0), .text(name)]).first != nil
    }

    public func credentials(operator name: String) async throws -> Credentials? {
        try await query("SELECT name, password_bcrypt, password_one_time, chief FROM operator WHERE name = ?", [.text(name)]).first.map {
            Credentials(name: $0.column("name")?.string ?? "", passwordBcrypt: $0.column("password_bcrypt")?.string,
                        oneTime: $0.column("password_one_time")?.integer == 1, chief: $0.column("chief")?.integer == 1)
        }
    }

    public struct Session: Sendable, Equatable {
        public var `operator`: String
        public var csrf: String
        public var chief: Bool
        /// Signed in with a one-time password: only the change-password page is open.
        public var mustChangePassword: Bool
    }

    public struct SessionLifetime: Sendable, Equatable {
        /// From sign-in, whatever happens.
        public var absoluteSeconds: Double
        /// Without a request.
        public var idleSeconds: Double
        public init(absoluteSeconds: Double = 8 * 3600, idleSeconds: Double = 3600) {
            self.absoluteSeconds = absoluteSeconds
            self.idleSeconds = idleSeconds
        }
    }

    /// Opens a session; returns the cookie value (shown to the browser only) and its CSRF token.
    public func openSession(operator name: String, address: String, lifetime: SessionLifetime,
                            now: Timestamp = .now()) async throws -> (cookie: String, csrf: String) {
        let cookie = Self.newToken()
        let csrf = Self.newToken()
        _ = try await query("""
            INSERT INTO session (token_sha256, operator, csrf, address, created_ms, last_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, [.text(Self.hash(cookie)), .text(name), .text(csrf), .text(address), .integer(Int(now.milliseconds)),
                  .integer(Int(now.milliseconds)), .integer(Int((now + lifetime.absoluteSeconds).milliseconds))])
        return (cookie, csrf)
    }

    /// The live session a cookie belongs to (and marks it used), or nil: unknown, expired, or
    /// idle too long. Expired sessions are deleted as they are met.
    public func session(cookie: String, lifetime: SessionLifetime, now: Timestamp = .now()) async throws -> Session? {
        let idleSince = Int((now + -lifetime.idleSeconds).milliseconds)
        let rows = try await query("""
            UPDATE session SET last_ms = ?1
            WHERE token_sha256 = ?2 AND expires_ms > ?1 AND last_ms > ?3
            RETURNING operator, csrf,
                (SELECT chief FROM operator o WHERE o.name = session.operator) AS chief,
                (SELECT password_one_time FROM operator o WHERE o.name = session.operator) AS one_time
            """, [.integer(Int(now.milliseconds)), .text(Self.hash(cookie)), .integer(idleSince)])
        guard let r = rows.first else {
            _ = try await query("DELETE FROM session WHERE expires_ms <= ? OR last_ms <= ?", [.integer(Int(now.milliseconds)), .integer(idleSince)])
            return nil
        }
        return Session(operator: r.column("operator")?.string ?? "", csrf: r.column("csrf")?.string ?? "",
                       chief: r.column("chief")?.integer == 1, mustChangePassword: r.column("one_time")?.integer == 1)
    }

    public func closeSession(cookie: String) async throws {
        _ = try await query("DELETE FROM session WHERE token_sha256 = ?", [.text(Self.hash(cookie))])
    }

    /// Ends every session of an operator (after a password change, all but the one in use).
    public func closeSessions(operator name: String, except cookie: String? = nil) async throws {
        _ = try await query("DELETE FROM session WHERE operator = ? AND token_sha256 != ?",
                            [.text(name), .text(cookie.map(Self.hash) ?? "")])
    }

    public struct AuditEntry: Sendable, Codable, Equatable {
        public var at: Timestamp
        public var `operator`: String?
        public var address: String
        public var action: String
        public var detail: String
        /// How many times it happened (a refused sign-in repeated within a window is one row).
        public var count: Int = 1
        /// The row's id: pages of the log go on from it.
        public var id: Int64 = 0
    }

    /// Bounds on what one audit entry keeps (the detail may carry an officer's reason).
    public static let maxAuditDetailCharacters = 1000

    public func audit(operator name: String?, address: String, action: String, detail: String = "", now: Timestamp = .now()) async throws {
        _ = try await query("INSERT INTO audit (at_ms, operator, address, action, detail) VALUES (?, ?, ?, ?, ?)",
                            [.integer(Int(now.milliseconds)), name.map { .text($0) } ?? .null, .text(String(address.prefix(100))),
                             .text(action), .text(String(detail.prefix(Self.maxAuditDetailCharacters)))])
    }

    /// What one kind of noise (a refused or throttled sign-in) may add to the log in a window.
    public enum AuditNoise {
        /// Repeats of one (action, address, detail) within it count in the first row.
        public static let windowSeconds: Int64 = 15 * 60
        /// Distinct rows of one action within a window; past them, every further one counts in
        /// a single row of that action with `sprayDetail` (a guess at many names from many
        /// addresses): a window adds at most this many rows and one, whatever arrives.
        public static let maxRowsPerWindow = 100
        public static let sprayDetail = "(many names or addresses)"
    }

    /// Notes an attempt that is noise when it repeats: counted in this window's row for the same
    /// action, address and detail when there is one, else a new row (or the window's spray row,
    /// past `AuditNoise.maxRowsPerWindow`). One transaction: two at once cannot both insert.
    public func auditNoise(address: String, action: String, detail: String, now: Timestamp = .now()) async throws {
        let window = now.milliseconds / (AuditNoise.windowSeconds * 1000) * (AuditNoise.windowSeconds * 1000)
        let address = String(address.prefix(100)), detail = String(detail.prefix(Self.maxAuditDetailCharacters))
        try await transaction { db in
            func bump(_ address: String, _ detail: String) async throws -> Bool {
                try await !db.query("""
                    UPDATE audit SET count = count + 1, at_ms = ?4 WHERE id = (SELECT id FROM audit WHERE action = ?1 AND at_ms >= ?2
                      AND address = ?3 AND detail = ?5 AND operator IS NULL ORDER BY id LIMIT 1) RETURNING id
                    """, [.text(action), .integer(Int(window)), .text(address), .integer(Int(now.milliseconds)), .text(detail)]).isEmpty
            }
            if try await bump(address, detail) { return }
            let rows = try await db.query("SELECT COUNT(*) AS n FROM audit WHERE action = ? AND at_ms >= ?", [.text(action), .integer(Int(window))])
                .first?.column("n")?.integer ?? 0
            var (a, d) = (address, detail)
            if rows >= AuditNoise.maxRowsPerWindow {
                (a, d) = ("(many)", AuditNoise.sprayDetail)
                if try await bump(a, d) { return }
            }
            _ = try await db.query("INSERT INTO audit (at_ms, operator, address, action, detail) VALUES (?, NULL, ?, ?, ?)",
                                   [.integer(Int(now.milliseconds)), .text(a), .text(action), .text(d)])
        }
    }

    /// The newest entries first: `limit` of them, older than the entry `before` when given (the
    /// next page), only officers' own actions with `officersOnly` (not the refused sign-ins of
    /// strangers).
    public func auditLog(limit: Int = 500, before: Int64? = nil, officersOnly: Bool = false) async throws -> [AuditEntry] {
        var sql = "SELECT id, at_ms, operator, address, action, detail, count FROM audit WHERE id < ?"
        if officersOnly { sql += " AND operator IS NOT NULL" }
        sql += " ORDER BY id DESC LIMIT ?"
        return try await query(sql, [.integer(Int(before ?? Int64.max)), .integer(limit)]).map {
            AuditEntry(at: Timestamp(milliseconds: Int64($0.column("at_ms")?.integer ?? 0)), operator: $0.column("operator")?.string,
                       address: $0.column("address")?.string ?? "", action: $0.column("action")?.string ?? "",
                       detail: $0.column("detail")?.string ?? "", count: $0.column("count")?.integer ?? 1,
                       id: Int64($0.column("id")?.integer ?? 0))
        }
    }

    /// Remembers a browser an officer signed in from (its cookie's hash); each officer keeps
    /// the newest `maxKnownBrowsers`.
    public static let maxKnownBrowsers = 20

    public func addKnownBrowser(operator name: String, now: Timestamp = .now()) async throws -> String {
        let token = Self.newToken()
        try await transaction { db in
            _ = try await db.query("INSERT INTO known_browser (token_sha256, operator, created_ms) VALUES (?, ?, ?)",
                                   [.text(Self.hash(token)), .text(name), .integer(Int(now.milliseconds))])
            _ = try await db.query("""
                DELETE FROM known_browser WHERE operator = ?1 AND token_sha256 NOT IN
                  (SELECT token_sha256 FROM known_browser WHERE operator = ?1 ORDER BY created_ms DESC LIMIT ?2)
                """, [.text(name), .integer(Self.maxKnownBrowsers)])
        }
        return token
    }

    /// Whether `cookie` is a browser `name` signed in from before.
    public func isKnownBrowser(_ cookie: String, operator name: String) async throws -> Bool {
        try await !query("SELECT 1 AS x FROM known_browser WHERE token_sha256 = ? AND operator = ?", [.text(Self.hash(cookie)), .text(name)]).isEmpty
    }
}
