import Crypto
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
    }

    /// Bounds on what one audit entry keeps (the detail may carry an officer's reason).
    public static let maxAuditDetailCharacters = 1000

    public func audit(operator name: String?, address: String, action: String, detail: String = "", now: Timestamp = .now()) async throws {
        _ = try await query("INSERT INTO audit (at_ms, operator, address, action, detail) VALUES (?, ?, ?, ?, ?)",
                            [.integer(Int(now.milliseconds)), name.map { .text($0) } ?? .null, .text(String(address.prefix(100))),
                             .text(action), .text(String(detail.prefix(Self.maxAuditDetailCharacters)))])
    }

    /// The newest entries first.
    public func auditLog(limit: Int = 500) async throws -> [AuditEntry] {
        try await query("SELECT at_ms, operator, address, action, detail FROM audit ORDER BY id DESC LIMIT ?", [.integer(limit)]).map {
            AuditEntry(at: Timestamp(milliseconds: Int64($0.column("at_ms")?.integer ?? 0)), operator: $0.column("operator")?.string,
                       address: $0.column("address")?.string ?? "", action: $0.column("action")?.string ?? "",
                       detail: $0.column("detail")?.string ?? "")
        }
    }
}
