import Evidence
import SQLiteNIO
import Wire

/// Device keys and countersignatures (issue 13). A device's key is bound at its first
/// authenticated heartbeat that carries one (trust on first use, like SSH), or given by an
/// operator (`commune devices add --key`); afterwards a different key is refused until an
/// operator re-enrols the box (`commune devices rekey`), which the audit log keeps.
extension Catalog {
    public enum KeyBinding: Sendable, Equatable {
        case bound
        case same
        case refused(boundAt: Timestamp?)
    }

    public func bindKey(device: String, publicKey: String, now: Timestamp = .now()) async throws -> KeyBinding {
        let rows = try await query("""
            UPDATE device SET public_key = ?1, key_bound_ms = ?2 WHERE id = ?3 AND public_key IS NULL RETURNING id
            """, [.text(publicKey), .integer(Int(now.milliseconds)), .text(device)])
        if !rows.isEmpty { return .bound }
        let held = try await query("SELECT public_key, key_bound_ms FROM device WHERE id = ?", [.text(device)]).first
        if held?.column("public_key")?.string == publicKey { return .same }
        return .refused(boundAt: held?.column("key_bound_ms")?.integer.map { Timestamp(milliseconds: Int64($0)) })
    }

    /// Sets (or, with nil, clears so the next heartbeat binds) a device's key.
    public func setKey(device: String, publicKey: String?, now: Timestamp = .now()) async throws {
        let rows = try await query("UPDATE device SET public_key = ?, key_bound_ms = ? WHERE id = ? RETURNING id",
                                   [publicKey.map { .text($0) } ?? .null, publicKey == nil ? .null : .integer(Int(now.milliseconds)), .text(device)])
        guard !rows.isEmpty else { throw CommuneError("no device \(device): commune devices lists them") }
    }

    public func publicKey(device: String) async throws -> String? {
        try await query("SELECT public_key FROM device WHERE id = ?", [.text(device)]).first?.column("public_key")?.string
    }

    public func addCountersign(_ c: Heartbeat.Countersign) async throws {
        _ = try await query("INSERT INTO countersign (device, seq, hash, received_ms, signature) VALUES (?, ?, ?, ?, ?)",
                            [.text(c.device), .integer(Int(c.seq)), .text(c.hash), .integer(Int(c.receivedAt.milliseconds)), .text(c.signature)])
    }

    /// A device's countersignatures, oldest first, with the commune key given.
    public func countersigns(device: String, communeKey: String) async throws -> [Heartbeat.Countersign] {
        try await query("SELECT seq, hash, received_ms, signature FROM countersign WHERE device = ? ORDER BY seq, id", [.text(device)]).map {
            Heartbeat.Countersign(device: device, seq: Int64($0.column("seq")?.integer ?? 0), hash: $0.column("hash")?.string ?? "",
                                  receivedAt: Timestamp(milliseconds: Int64($0.column("received_ms")?.integer ?? 0)),
                                  signature: $0.column("signature")?.string ?? "", communeKey: communeKey)
        }
    }

    /// The commune's copy of a device's chain records overlapping `from`–`to` (those its
    /// verified clips carried), in sequence order.
    public func chainRecords(device: String, from: Timestamp, to: Timestamp) async throws -> [SealedRecord] {
        try await query("SELECT body, signature FROM chain_record WHERE device = ? AND end_ms > ? AND start_ms < ? ORDER BY seq",
                        [.text(device), .integer(Int(from.milliseconds)), .integer(Int(to.milliseconds))]).map {
            SealedRecord(body: $0.column("body")?.string ?? "", signature: $0.column("signature")?.string ?? "")
        }
    }
}
