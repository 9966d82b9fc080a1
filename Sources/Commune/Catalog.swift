import Evidence
import SystemCrypto
import Logging
import SQLiteNIO
import Wire

/// The commune server's one front door to its SQLite catalog: devices (token hashes only),
/// uploads in progress, and the clips that arrived whole and verified.
public actor Catalog {
    let connection: SQLiteConnection
    private let gate = SerialGate()
    /// One heartbeat's rollout step at a time: the download cap holds across boxes.
    let fleetGate = SerialGate()

    static let migrations: [String] = [
        """
        CREATE TABLE device (
            id TEXT PRIMARY KEY,
            token_sha256 TEXT NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL,
            last_seen_ms INTEGER
        );
        CREATE TABLE upload (
            id TEXT PRIMARY KEY,
            device TEXT NOT NULL REFERENCES device (id),
            length INTEGER NOT NULL CHECK (length >= 0),
            offset_bytes INTEGER NOT NULL DEFAULT 0,
            metadata TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL
        );
        CREATE TABLE clip (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            request_id TEXT,
            reason TEXT,
            received_ms INTEGER NOT NULL
        )
        """,
        // 2: footage requests, device health from heartbeats, operator tokens.
        """
        CREATE TABLE request (
            id TEXT PRIMARY KEY,
            device TEXT NOT NULL REFERENCES device (id),
            camera TEXT,
            from_ms INTEGER NOT NULL,
            to_ms INTEGER NOT NULL CHECK (to_ms > from_ms),
            reason TEXT,
            state TEXT NOT NULL CHECK (state IN ('waiting', 'accepted', 'complete', 'refused')),
            coverage TEXT,
            error TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE INDEX request_by_device ON request (device, state);
        ALTER TABLE device ADD COLUMN health TEXT;
        CREATE TABLE operator (
            name TEXT PRIMARY KEY,
            token_sha256 TEXT NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL
        )
        """,
        // 3: a request's coverage reads its device's clips by time, not the whole table.
        """
        CREATE INDEX clip_by_device ON clip (device, start_ms)
        """,
        // 4: the police desk (web page): operators' passwords (bcrypt) and role, sign-in
        // sessions (only a hash of the cookie is kept), and the audit log (chain of custody).
        """
        ALTER TABLE operator ADD COLUMN password_bcrypt TEXT;
        ALTER TABLE operator ADD COLUMN password_one_time INTEGER NOT NULL DEFAULT 0 CHECK (password_one_time IN (0, 1));
        ALTER TABLE operator ADD COLUMN chief INTEGER NOT NULL DEFAULT 0 CHECK (chief IN (0, 1));
        CREATE TABLE session (
            token_sha256 TEXT PRIMARY KEY,
            operator TEXT NOT NULL REFERENCES operator (name) ON DELETE CASCADE,
            csrf TEXT NOT NULL,
            address TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            last_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            operator TEXT,
            address TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_by_time ON audit (at_ms)
        """,
        // 5: evidence (issue 13): each device's public key, bound at its first heartbeat (or
        // given at `devices add --key`), and every countersignature given to it.
        """
        ALTER TABLE device ADD COLUMN public_key TEXT;
        ALTER TABLE device ADD COLUMN key_bound_ms INTEGER;
        CREATE TABLE countersign (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            signature TEXT NOT NULL
        );
        CREATE INDEX countersign_by_device ON countersign (device, seq)
        """,
        // 6: each clip's proof as it arrived (verified, unverified, failed: ClipProof), and the
        // commune's copy of every box's chain records, from the seals the clips carried.
        """
        ALTER TABLE clip ADD COLUMN proof TEXT NOT NULL DEFAULT 'unverified' CHECK (proof IN ('verified', 'unverified', 'failed'));
        ALTER TABLE clip ADD COLUMN proof_detail TEXT;
        ALTER TABLE clip ADD COLUMN chain_seq INTEGER;
        CREATE TABLE chain_record (
            device TEXT NOT NULL,
            seq INTEGER NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            hash TEXT NOT NULL,
            body TEXT NOT NULL,
            signature TEXT NOT NULL,
            PRIMARY KEY (device, seq)
        )
        """,
        // 7: when something moved at each box, a byte a minute (issue 14, `ActivityMinutes`):
        // minutes with no footage known are not kept.
        """
        CREATE TABLE activity_minute (
            device TEXT NOT NULL,
            minute_ms INTEGER NOT NULL,
            level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 254),
            PRIMARY KEY (device, minute_ms)
        ) WITHOUT ROWID
        """,
        // 8: a request's preview (issue 14): the file once whole and checked, and, while it
        // arrives, which upload carries it (the desk shows the pictures already there).
        """
        CREATE TABLE preview (
            request TEXT PRIMARY KEY REFERENCES request (id),
            device TEXT NOT NULL,
            path TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            pictures INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            received_ms INTEGER NOT NULL
        );
        ALTER TABLE upload ADD COLUMN preview_request TEXT;
        ALTER TABLE upload ADD COLUMN part_path TEXT
        """,
        // 9 (issue 22): refused and throttled sign-ins are counted in one row a window instead of
        // a row each (212 a second buried the officers' own actions); the browsers an officer
        // has signed in from (only a hash of their cookie), which the sign-in throttle lets
        // through when someone else is guessing that officer's password.
        """
        ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
        CREATE INDEX audit_by_action ON audit (action, at_ms);
        CREATE TABLE known_browser (
            token_sha256 TEXT PRIMARY KEY,
            operator TEXT NOT NULL REFERENCES operator (name) ON DELETE CASCADE,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX known_browser_by_operator ON known_browser (operator, created_ms)
        """,
        // 10 (issue 22): a clip may be `damaged` (the box's card changed it; its intact
        // fragments proved, the seconds lost named). SQLite cannot change a CHECK in place, so
        // the table is made again with every row (nothing references it).
        """
        CREATE TABLE clip_new (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            camera TEXT NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,
            request_id TEXT,
            reason TEXT,
            received_ms INTEGER NOT NULL,
            proof TEXT NOT NULL DEFAULT 'unverified' CHECK (proof IN ('verified', 'unverified', 'damaged', 'failed')),
            proof_detail TEXT,
            chain_seq INTEGER
        );
        INSERT INTO clip_new (id, device, camera, start_ms, end_ms, bytes, sha256, path, request_id, reason, received_ms, proof, proof_detail, chain_seq)
            SELECT id, device, camera, start_ms, end_ms, bytes, sha256, path, request_id, reason, received_ms, proof, proof_detail, chain_seq FROM clip;
        DROP TABLE clip;
        ALTER TABLE clip_new RENAME TO clip;
        CREATE INDEX clip_by_device ON clip (device, start_ms)
        """,
        // 11 (issue 23): the commune's signed binding of every key a device ever had (the trust
        // anchor its bundles carry; a re-keyed box's old bundles keep theirs), and the device key
        // each countersignature names (version 2; NULL: made before, version 1).
        """
        CREATE TABLE key_binding (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            device_key TEXT NOT NULL,
            bound_ms INTEGER NOT NULL,
            commune_key TEXT NOT NULL,
            signature TEXT NOT NULL
        );
        CREATE INDEX key_binding_by_device ON key_binding (device, device_key);
        ALTER TABLE countersign ADD COLUMN device_key TEXT
        """,
        // 12: the tus upload each clip finished, so a HEAD after the final PATCH (its 204 lost
        // on a flapping link) answers "complete" instead of 404, which made the box send the
        // whole segment again as a second clip.
        """
        ALTER TABLE clip ADD COLUMN upload_id TEXT;
        CREATE INDEX clip_by_upload ON clip (upload_id) WHERE upload_id IS NOT NULL;
        CREATE INDEX clip_by_sha256 ON clip (device, sha256)
        """,
        // 13 (issue 24): releases, rollouts in waves and each box's part in them, and what
        // each box last said of its slots.
        """
        CREATE TABLE release (
            version TEXT NOT NULL,
            arch TEXT NOT NULL CHECK (arch IN ('amd64', 'arm64')),
            path TEXT NOT NULL,
            bytes INTEGER NOT NULL CHECK (bytes > 0),
            sha256 TEXT NOT NULL,
            minimum_version TEXT NOT NULL,
            signed_by TEXT NOT NULL,
            notes TEXT,
            added_ms INTEGER NOT NULL,
            PRIMARY KEY (version, arch)
        );
        CREATE TABLE rollout (
            id TEXT PRIMARY KEY,
            version TEXT NOT NULL,
            arch TEXT NOT NULL,
            waves TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('running', 'stopped', 'done')),
            wave INTEGER NOT NULL,
            reason TEXT,
            max_failed_percent INTEGER NOT NULL,
            soak_seconds INTEGER NOT NULL,
            max_downloads INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            FOREIGN KEY (version, arch) REFERENCES release (version, arch)
        );
        CREATE TABLE rollout_box (
            rollout TEXT NOT NULL REFERENCES rollout (id),
            device TEXT NOT NULL,
            wave INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('waiting', 'offered', 'installed', 'trial', 'blessed', 'failed')),
            reason TEXT,
            updated_ms INTEGER NOT NULL,
            blessed_ms INTEGER,
            PRIMARY KEY (rollout, device)
        );
        ALTER TABLE device ADD COLUMN update_report TEXT
        """,
        // 14 (issue 24, item 7): changes of a box's settings sent from the commune, each
        // revision with what became of it on the box, and what the box last said of them.
        """
        CREATE TABLE device_settings (
            device TEXT NOT NULL,
            revision INTEGER NOT NULL CHECK (revision > 0),
            toml TEXT NOT NULL,
            sent_ms INTEGER NOT NULL,
            sent_by TEXT,
            result TEXT CHECK (result IN ('applied', 'rolled_back', 'refused', 'superseded')),
            reason TEXT,
            result_ms INTEGER,
            PRIMARY KEY (device, revision)
        );
        ALTER TABLE device ADD COLUMN settings_report TEXT
        """,
    ]

    public static func open(path: String, logger: Logger) async throws -> Catalog {
        let c = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            _ = try await c.query("PRAGMA journal_mode = WAL", [])
            _ = try await c.query("PRAGMA synchronous = FULL", [])
            _ = try await c.query("PRAGMA foreign_keys = ON", [])
            _ = try await c.query("PRAGMA busy_timeout = 5000", [])
            try await migrate(c, path: path, logger: logger)
        } catch {
            try? await c.close()
            throw error
        }
        return Catalog(connection: c)
    }

    /// Applies pending migrations in one IMMEDIATE transaction (all or none: a failure rolls
    /// back to the schema it found). A catalog from a newer commune is refused, not rewritten.
    static func migrate(_ c: SQLiteConnection, path: String, logger: Logger) async throws {
        _ = try await c.query("BEGIN IMMEDIATE", [])
        do {
            let version = try await c.query("PRAGMA user_version", []).first?.column("user_version")?.integer ?? 0
            guard version <= migrations.count else {
                throw CommuneError("the catalog \(path) was written by a newer commune (schema \(version), this one knows \(migrations.count)): update the commune server, or point --data at another directory")
            }
            for (n, sql) in migrations.enumerated() where n >= version {
                logger.info("catalog: applying migration \(n + 1)")
                for statement in sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                    _ = try await c.query(String(statement), [])
                }
                _ = try await c.query("PRAGMA user_version = \(n + 1)", [])
            }
            _ = try await c.query("COMMIT", [])
        } catch {
            _ = try? await c.query("ROLLBACK", [])
            throw error
        }
    }

    init(connection: SQLiteConnection) { self.connection = connection }

    /// One statement, on its own.
    func query(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        await gate.enter()
        do {
            let rows = try await connection.query(sql, binds)
            await gate.leave()
            return rows
        } catch {
            await gate.leave()
            throw error
        }
    }

    /// `body`'s statements as one `BEGIN IMMEDIATE` transaction, with no other statement between
    /// them: all committed, or none when it throws. The body uses only the connection it is given.
    func transaction<T: Sendable>(_ body: @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        await gate.enter()
        do {
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            let value: T
            do {
                value = try await body(connection)
                _ = try await connection.query("COMMIT", [])
            } catch {
                _ = try? await connection.query("ROLLBACK", [])
                throw error
            }
            await gate.leave()
            return value
        } catch {
            await gate.leave()
            throw error
        }
    }

    public func close() async { try? await connection.close() }

    /// 32 random bytes in hex: session cookies, CSRF and form tokens, operator and device tokens.
    public static func newToken() -> String {
        var rng = SystemRandomNumberGenerator()
        return hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    static func hash(_ token: String) -> String {
        hex(SHA256.hash(data: Array(token.utf8)))
    }

    /// Registers a device and returns its token (shown once; only its hash is kept).
    public func addDevice(id: String, now: Timestamp = .now()) async throws -> String {
        guard PlainName.isValid(id) else { throw CommuneError(PlainName.problem(id, what: "device id")) }
        let token = Self.newToken()
        _ = try await query("INSERT INTO device (id, token_sha256, created_ms) VALUES (?, ?, ?)",
                                       [.text(id), .text(Self.hash(token)), .integer(Int(now.milliseconds))])
        return token
    }

    public struct Device: Sendable, Codable, Equatable {
        public var id: String
        public var lastSeen: Timestamp?
        /// What the box said in its last heartbeat.
        public var health: Heartbeat.Health?
        /// Its Ed25519 public key (base64), once bound (issue 13).
        public var publicKey: String?
        enum CodingKeys: String, CodingKey { case id, health, lastSeen = "last_seen", publicKey = "public_key" }
    }

    public func devices() async throws -> [Device] {
        try await query("SELECT id, last_seen_ms, health, public_key FROM device ORDER BY id", []).map {
            Device(id: $0.column("id")?.string ?? "", lastSeen: $0.column("last_seen_ms")?.integer.map { Timestamp(milliseconds: Int64($0)) },
                   health: $0.column("health")?.string.flatMap { try? Heartbeat.decode(Heartbeat.Health.self, from: Array($0.utf8)) },
                   publicKey: $0.column("public_key")?.string)
        }
    }

    public func setHealth(device: String, _ health: Heartbeat.Health) async throws {
        _ = try await query("UPDATE device SET health = ? WHERE id = ?",
                                       [.text(String(decoding: try Heartbeat.encode(health), as: UTF8.self)), .text(device)])
    }

    /// Registers an operator (who may use the operator API and, with a password, the desk) and
    /// returns its API token, shown once.
    public func addOperator(name: String, chief: Bool = false, now: Timestamp = .now()) async throws -> String {
        guard PlainName.isValid(name) else { throw CommuneError(PlainName.problem(name, what: "operator name")) }
        let token = Self.newToken()
        _ = try await query("INSERT INTO operator (name, token_sha256, created_ms, chief) VALUES (?, ?, ?, ?)",
                            [.text(name), .text(Self.hash(token)), .integer(Int(now.milliseconds)), .integer(chief ? 1 : 0)])
        return token
    }

    /// The operator a bearer token belongs to, if any.
    public func `operator`(token: String) async throws -> String? {
        try await query("SELECT name FROM operator WHERE token_sha256 = ?", [.text(Self.hash(token))]).first?.column("name")?.string
    }

    /// The device a bearer token belongs to, if any (and marks it seen).
    public func device(token: String, now: Timestamp = .now()) async throws -> String? {
        let rows = try await query("UPDATE device SET last_seen_ms = ? WHERE token_sha256 = ? RETURNING id",
                                              [.integer(Int(now.milliseconds)), .text(Self.hash(token))])
        return rows.first?.column("id")?.string
    }

    public struct Upload: Sendable, Equatable {
        public var id: String
        public var device: String
        public var length: Int64
        public var offset: Int64
        public var metadata: String
        public var expires: Timestamp
    }

    public func createUpload(_ u: Upload, now: Timestamp = .now()) async throws {
        _ = try await query("INSERT INTO upload (id, device, length, offset_bytes, metadata, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       [.text(u.id), .text(u.device), .integer(Int(u.length)), .integer(Int(u.offset)), .text(u.metadata),
                                        .integer(Int(now.milliseconds)), .integer(Int(u.expires.milliseconds))])
    }

    public func upload(id: String) async throws -> Upload? {
        try await query("SELECT id, device, length, offset_bytes, metadata, expires_ms FROM upload WHERE id = ?", [.text(id)]).first.map {
            Upload(id: $0.column("id")?.string ?? "", device: $0.column("device")?.string ?? "",
                   length: Int64($0.column("length")?.integer ?? 0), offset: Int64($0.column("offset_bytes")?.integer ?? 0),
                   metadata: $0.column("metadata")?.string ?? "", expires: Timestamp(milliseconds: Int64($0.column("expires_ms")?.integer ?? 0)))
        }
    }

    /// Bytes of a device's clips plus the full length of its uploads in progress.
    public func bytesHeld(device: String, now: Timestamp = .now()) async throws -> Int64 {
        let rows = try await query("""
            SELECT (SELECT COALESCE(SUM(bytes), 0) FROM clip WHERE device = ?1) + (SELECT COALESCE(SUM(length), 0) FROM upload WHERE device = ?1 AND expires_ms > ?2)
                 + (SELECT COALESCE(SUM(bytes), 0) FROM preview WHERE device = ?1) AS b
            """, [.text(device), .integer(Int(now.milliseconds))])
        return Int64(rows.first?.column("b")?.integer ?? 0)
    }

    public func setOffset(id: String, _ offset: Int64) async throws {
        _ = try await query("UPDATE upload SET offset_bytes = ? WHERE id = ?", [.integer(Int(offset)), .text(id)])
    }

    /// Uploads whose expiry has passed (their parts are swept: issue 11, item 13).
    public func expiredUploads(now: Timestamp = .now()) async throws -> [String] {
        try await query("SELECT id FROM upload WHERE expires_ms <= ?", [.integer(Int(now.milliseconds))]).compactMap { $0.column("id")?.string }
    }

    public func deleteUpload(id: String) async throws {
        _ = try await query("DELETE FROM upload WHERE id = ?", [.text(id)])
    }

    public struct Clip: Sendable, Codable, Equatable {
        public var path: String
        public var device: String
        public var camera: String
        public var start: Timestamp
        public var end: Timestamp
        public var bytes: Int64
        public var sha256: String
        public var request: String?
        public var reason: String?
        public var receivedAt: Timestamp
        /// The catalog's row id (0 for a clip not filed yet): the desk names clips by it.
        public var id: Int64 = 0
        /// What its seal proved on arrival: "verified", "unverified" or "failed" (issue 13).
        public var proof: String = "unverified"
        public var proofDetail: String? = nil
        public var chainSeq: Int64? = nil
        enum CodingKeys: String, CodingKey {
            case path, device, camera, start, end, bytes, sha256, request, reason, id, proof
            case receivedAt = "received_at", proofDetail = "proof_detail", chainSeq = "chain_seq"
        }
    }

    /// Files a verified clip and forgets its upload in one transaction: a crash between the two
    /// can neither leave a clip whose upload still counts against the quota, nor an upload row
    /// for a file that was already filed.
    public func fileClip(_ c: Clip, uploadID: String, records: [SealedRecord] = []) async throws {
        try await transaction { db in
            _ = try await db.query("""
                INSERT INTO clip (device, camera, start_ms, end_ms, bytes, sha256, path, request_id, reason, received_ms, proof, proof_detail, chain_seq, upload_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(c.device), .text(c.camera), .integer(Int(c.start.milliseconds)), .integer(Int(c.end.milliseconds)),
                      .integer(Int(c.bytes)), .text(c.sha256), .text(c.path), c.request.map { .text($0) } ?? .null,
                      c.reason.map { .text($0) } ?? .null, .integer(Int(c.receivedAt.milliseconds)), .text(c.proof),
                      c.proofDetail.map { .text($0) } ?? .null, c.chainSeq.map { .integer(Int($0)) } ?? .null, .text(uploadID)])
            // The records the clip's seal carried: kept once each (a record seen again with other
            // contents is not overwritten: the verifier finds the conflict).
            for sealed in records {
                guard let r = sealed.record else { continue }
                _ = try await db.query("""
                    INSERT OR IGNORE INTO chain_record (device, seq, start_ms, end_ms, hash, body, signature) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, [.text(c.device), .integer(Int(r.seq)), .integer(Int(r.startMs)), .integer(Int(r.endMs)), .text(sealed.hash),
                          .text(sealed.body), .text(sealed.signature)])
            }
            _ = try await db.query("DELETE FROM upload WHERE id = ?", [.text(uploadID)])
        }
    }

    /// The clip a device's finished upload became (nil: no such upload was ever filed).
    public func clip(upload uploadID: String, device: String) async throws -> Clip? {
        let ids = try await query("SELECT id FROM clip WHERE upload_id = ? AND device = ?", [.text(uploadID), .text(device)])
        guard let id = ids.first?.column("id")?.integer else { return nil }
        return try await clip(id: Int64(id))
    }

    /// A clip of this device with these contents, start and request already filed: the same
    /// segment uploaded a second time for the same reason (the box lost the answer to its first
    /// upload). The same segment sent for another request is not this: it counts for that one.
    public func clip(device: String, start: Timestamp, sha256: String, request: String?) async throws -> Clip? {
        let ids = try await query("SELECT id FROM clip WHERE device = ? AND sha256 = ? AND start_ms = ? AND request_id IS ? ORDER BY id LIMIT 1",
                                  [.text(device), .text(sha256), .integer(Int(start.milliseconds)), request.map { .text($0) } ?? .null])
        guard let id = ids.first?.column("id")?.integer else { return nil }
        return try await clip(id: Int64(id))
    }

    public func clip(id: Int64) async throws -> Clip? {
        try await clips(id: id).first
    }

    public func clips(device: String? = nil, id: Int64? = nil) async throws -> [Clip] {
        var sql = "SELECT * FROM clip"
        var binds: [SQLiteData] = []
        if let device { sql += " WHERE device = ?"; binds.append(.text(device)) }
        if let id { sql += device == nil ? " WHERE id = ?" : " AND id = ?"; binds.append(.integer(Int(id))) }
        sql += " ORDER BY device, camera, start_ms"
        return try await query(sql, binds).map { r in
            func ms(_ k: String) -> Timestamp { Timestamp(milliseconds: Int64(r.column(k)?.integer ?? 0)) }
            return Clip(path: r.column("path")?.string ?? "", device: r.column("device")?.string ?? "", camera: r.column("camera")?.string ?? "",
                        start: ms("start_ms"), end: ms("end_ms"), bytes: Int64(r.column("bytes")?.integer ?? 0),
                        sha256: r.column("sha256")?.string ?? "", request: r.column("request_id")?.string,
                        reason: r.column("reason")?.string, receivedAt: ms("received_ms"), id: Int64(r.column("id")?.integer ?? 0),
                        proof: r.column("proof")?.string ?? "unverified", proofDetail: r.column("proof_detail")?.string,
                        chainSeq: r.column("chain_seq")?.integer.map(Int64.init))
        }
    }
}
