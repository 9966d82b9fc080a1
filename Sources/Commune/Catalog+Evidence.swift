import Evidence
import SQLiteNIO
import Wire

/// Device keys and countersignatures (issue 13). A device's key is bound at its first
/// authenticated heartbeat that carries one (trust on first use, like SSH), or given by an
/// operator (`commune devices add --key`); afterwards a different key is refused until an
/// operator re-enrols the box (`commune devices rekey`), which the audit log keeps.
extension Catalog {
    public enum KeyOutcome: Sendable, Equatable {
        case bound
        case same
        case refused(boundAt: Timestamp?)
    }

    public func bindKey(device: String, publicKey: String, now: Timestamp = .now()) async throws -> KeyOutcome {
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
        _ = try await query("INSERT INTO countersign (device, seq, hash, received_ms, signature, device_key) VALUES (?, ?, ?, ?, ?, ?)",
                            [.text(c.device), .integer(Int(c.seq)), .text(c.hash), .integer(Int(c.receivedAt.milliseconds)), .text(c.signature),
                             c.deviceKey.map { .text($0) } ?? .null])
    }

    /// A device's countersignatures, oldest first, with the commune key given.
    public func countersigns(device: String, communeKey: String) async throws -> [Heartbeat.Countersign] {
        try await query("SELECT seq, hash, received_ms, signature, device_key FROM countersign WHERE device = ? ORDER BY seq, id", [.text(device)]).map {
            Heartbeat.Countersign(device: device, deviceKey: $0.column("device_key")?.string, seq: Int64($0.column("seq")?.integer ?? 0),
                                  hash: $0.column("hash")?.string ?? "",
                                  receivedAt: Timestamp(milliseconds: Int64($0.column("received_ms")?.integer ?? 0)),
                                  signature: $0.column("signature")?.string ?? "", communeKey: communeKey)
        }
    }

    /// The commune's binding of `deviceKey` to `device` under `communeKey`, made (signed by
    /// `sign`, as of when the key was bound) and kept the first time it is asked for; every
    /// binding a device ever had is kept, so a re-keyed box's old bundles stay verifiable.
    public func keyBinding(device: String, deviceKey: String, communeKey: String,
                           sign: @Sendable (_ boundAt: Timestamp) throws -> KeyBinding) async throws -> KeyBinding {
        if let row = try await query("""
            SELECT bound_ms, signature FROM key_binding WHERE device = ? AND device_key = ? AND commune_key = ? ORDER BY id DESC LIMIT 1
            """, [.text(device), .text(deviceKey), .text(communeKey)]).first,
            let ms = row.column("bound_ms")?.integer, let signature = row.column("signature")?.string {
            return KeyBinding(device: device, deviceKey: deviceKey, boundAt: Timestamp(milliseconds: Int64(ms)), communeKey: communeKey, signature: signature)
        }
        let held = try await query("SELECT public_key, key_bound_ms FROM device WHERE id = ?", [.text(device)]).first
        let boundMs = held?.column("public_key")?.string == deviceKey ? held?.column("key_bound_ms")?.integer : nil
        let binding = try sign(boundMs.map { Timestamp(milliseconds: Int64($0)) } ?? .now())
        _ = try await query("INSERT INTO key_binding (device, device_key, bound_ms, commune_key, signature) VALUES (?, ?, ?, ?, ?)",
                            [.text(device), .text(deviceKey), .integer(Int(binding.boundAt.milliseconds)), .text(communeKey), .text(binding.signature)])
        return binding
    }

    /// Every key a device was ever bound to, oldest first (base64).
    public func boundKeys(device: String) async throws -> [String] {
        var keys = try await query("SELECT device_key FROM key_binding WHERE device = ? ORDER BY id", [.text(device)]).compactMap { $0.column("device_key")?.string }
        if let current = try await publicKey(device: device), !keys.contains(current) { keys.append(current) }
        return keys
    }

    /// The commune's copy of a device's chain for `from`–`to`: the record before the range,
    /// those overlapping it, and on to the first record the commune countersigned at or after
    /// its last (so a bundle shows when the footage existed by, and a cut tail), in order.
    public func chainRecords(device: String, from: Timestamp, to: Timestamp) async throws -> [SealedRecord] {
        guard let span = try await proofSpan(device: device, from: from, to: to) else { return [] }
        return try await query("SELECT body, signature FROM chain_record WHERE device = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                               [.text(device), .integer(span.first), .integer(span.through ?? span.last)]).map {
            SealedRecord(body: $0.column("body")?.string ?? "", signature: $0.column("signature")?.string ?? "")
        }
    }

    /// The sequence numbers that prove `from`–`to` in the commune's copy: the record before the
    /// first overlapping it, the last overlapping it, and the first countersigned at or after
    /// that (nil: none yet). Nil when no record overlaps the range.
    func proofSpan(device: String, from: Timestamp, to: Timestamp) async throws -> (first: Int, last: Int, through: Int?)? {
        guard let span = try await query("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM chain_record WHERE device = ? AND end_ms > ? AND start_ms < ?",
                                         [.text(device), .integer(Int(from.milliseconds)), .integer(Int(to.milliseconds))]).first,
              let lo = span.column("lo")?.integer, let hi = span.column("hi")?.integer else { return nil }
        return (max(1, lo - 1), hi, try await countersignedSeq(device: device, atOrAfter: hi))
    }

    func countersignedSeq(device: String, atOrAfter seq: Int) async throws -> Int? {
        try await query("SELECT MIN(seq) AS s FROM countersign WHERE device = ? AND seq >= ?", [.text(device), .integer(seq)])
            .first?.column("s")?.integer
    }

    /// Keeps chain records a box sent when asked (`Heartbeat.Report.chain`): only those `wanted`
    /// (the stretch the last answer asked for), in order from its first, each sealed by the
    /// device's bound key, naming the device and following the record before it (issue 22: a
    /// box could plant unasked records, out of order, with a broken `prev` or at seq 2^53).
    /// Records past the first that is not the next one asked for are ignored, not refused (the
    /// stretch wanted may have moved since the box was asked). A sequence number the commune
    /// already holds is kept as first received (a differing copy shows in the verifier).
    /// Returns how many were new, and why any was refused.
    public func addChainRecords(device: String, _ records: [SealedRecord], wanted: Heartbeat.ChainRange?) async throws -> (added: Int, refused: String?) {
        guard !records.isEmpty, let wanted else { return (0, nil) }
        guard let key = try await publicKey(device: device).flatMap(DeviceKey.publicKey(base64:)) else {
            return (0, "no key is bound to \(device): its chain records cannot be checked")
        }
        var expected = wanted.after + 1
        var previous = wanted.after < 1 ? ChainRecord.genesis
            : try await query("SELECT hash FROM chain_record WHERE device = ? AND seq = ?", [.text(device), .integer(Int(wanted.after))])
                .first?.column("hash")?.string
        var added = 0
        for sealed in records {
            guard let r = sealed.record else { return (added, "a chain record that cannot be read") }
            guard r.device == device else { return (added, "chain record \(r.seq) names another device") }
            guard sealed.isSealed(by: key) else { return (added, "chain record \(r.seq) is not sealed by \(device)'s key") }
            guard r.seq == expected, r.seq <= wanted.through else { break }
            if let previous, r.prev != previous { return (added, "chain record \(r.seq) does not follow record \(r.seq - 1)") }
            let rows = try await query("""
                INSERT OR IGNORE INTO chain_record (device, seq, start_ms, end_ms, hash, body, signature) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq
                """, [.text(device), .integer(Int(r.seq)), .integer(Int(r.startMs)), .integer(Int(r.endMs)), .text(sealed.hash),
                      .text(sealed.body), .text(sealed.signature)])
            added += rows.count
            expected += 1
            previous = sealed.hash
        }
        return (added, nil)
    }

    /// The chain records the commune lacks for the proof of a request's footage (requests of
    /// the last `days` with clips filed): from the record before the first clip through the
    /// first countersigned record at or after the last. The first such stretch, or nil.
    public func chainWanted(device: String, now: Timestamp = .now(), days: Int64 = 30) async throws -> Heartbeat.ChainRange? {
        let spans = try await query("""
            SELECT MIN(c.chain_seq) AS lo, MAX(c.chain_seq) AS hi FROM clip c JOIN request r ON r.id = c.request_id
            WHERE r.device = ? AND r.created_ms > ? AND c.chain_seq IS NOT NULL GROUP BY r.id ORDER BY MIN(r.created_ms)
            """, [.text(device), .integer(Int(now.milliseconds - days * 86_400_000))])
        for span in spans {
            guard let lo = span.column("lo")?.integer, let hi = span.column("hi")?.integer,
                  let through = try await countersignedSeq(device: device, atOrAfter: hi),
                  let missing = try await firstMissing(device: device, from: max(1, lo - 1), through: through) else { continue }
            return .init(after: Int64(missing - 1), through: Int64(through))
        }
        return nil
    }

    /// The first sequence number in `from`...`through` the commune's copy lacks, or nil.
    func firstMissing(device: String, from first: Int, through: Int) async throws -> Int? {
        let held = try await query("SELECT COUNT(*) AS n FROM chain_record WHERE device = ? AND seq BETWEEN ? AND ?",
                                   [.text(device), .integer(first), .integer(through)]).first?.column("n")?.integer ?? 0
        if held == through - first + 1 { return nil }
        if try await query("SELECT 1 AS x FROM chain_record WHERE device = ? AND seq = ?", [.text(device), .integer(first)]).isEmpty { return first }
        return try await query("""
            SELECT MIN(a.seq) + 1 AS m FROM chain_record a WHERE a.device = ?1 AND a.seq BETWEEN ?2 AND ?3
              AND NOT EXISTS (SELECT 1 FROM chain_record b WHERE b.device = a.device AND b.seq = a.seq + 1)
            """, [.text(device), .integer(first), .integer(through - 1)]).first?.column("m")?.integer
    }

    /// How far the commune's copy of the chain proves a range (the desk shows it).
    public enum Proof: Sendable, Equatable {
        /// No sealed record covers the range (an unsealed box, or nothing arrived yet).
        case none
        /// Records are still to come from the box (or no head past the range is countersigned yet).
        case waiting
        /// From the record before the range through one the commune countersigned at `at`.
        case whole(countersignedAt: Timestamp)
    }

    public func proof(device: String, from: Timestamp, to: Timestamp) async throws -> Proof {
        guard let span = try await proofSpan(device: device, from: from, to: to) else { return .none }
        guard let through = span.through, try await firstMissing(device: device, from: span.first, through: through) == nil,
              let at = try await query("SELECT MIN(received_ms) AS t FROM countersign WHERE device = ? AND seq = ?",
                                       [.text(device), .integer(through)]).first?.column("t")?.integer else { return .waiting }
        return .whole(countersignedAt: Timestamp(milliseconds: Int64(at)))
    }
}
