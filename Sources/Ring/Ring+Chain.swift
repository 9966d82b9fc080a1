import Activity
import SystemCrypto
import Evidence
import FoundationEssentials
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The evidence chain on the box (issue 13): once the recorder calls `startSealing`, every
/// finished segment gets a sealed chain record, appended to its file as a seal box and kept in
/// the index in the same transaction as the segment's row; every gap gets one too. Records
/// stay in the index when the ring evicts the footage they describe.
extension Ring {
    /// Seals from now on with `key`, naming `device` in every record.
    public func startSealing(key: DeviceKey, device: String, software: String? = nil) {
        sealer = (key, device)
        self.software = software.flatMap { ChainRecord.isSoftware($0) ? $0 : nil }
        logger.info("evidence: sealing segments", metadata: ["key": "\(key.fingerprint)"])
    }

    public var isSealing: Bool { sealer != nil }

    /// The newest record's sequence number and hash (the chain head), or nil before the first.
    public func chainHead() async throws(RingError) -> (seq: Int64, hash: String)? {
        if let last = try await unfiledRecords().last { return (last.record.seq, last.sealed.hash) }
        return try await index.chainHead()
    }

    /// Sealed records in order, after sequence `after`.
    public func chain(after: Int64 = 0, limit: Int = 1_000_000) async throws(RingError) -> [SealedRecord] {
        // Unfiled records are the newest: every filing files all of them before anything after.
        // Read before the filed ones, so a batch the recorder files in between (another process
        // reading) shows up twice, and is taken once, rather than not at all.
        let waiting = try await unfiledRecords()
        let filed = try await index.chain(after: after, limit: limit)
        let lastFiled = filed.last?.record?.seq ?? after
        let newest = waiting.filter { $0.record.seq > max(after, lastFiled) }.map(\.sealed)
        return newest.isEmpty ? filed : Array((filed + newest).prefix(limit))
    }

    /// Records of indexed segments not yet filed in the chain table: this ring's own, or, for
    /// another process reading the index (`junction export`, `status`), those the newest rows
    /// name, read back from their files' seal boxes.
    func unfiledRecords() async throws(RingError) -> [RingIndex.ChainRow] {
        if !unfiled.isEmpty || isSealing { return unfiled }
        return try await recordsFromNewestSealBoxes()
    }

    /// The records the newest rows name and the chain table lacks, from their files' seal boxes.
    /// A file whose seal box is gone or names another record is left out (`verifyChain` then
    /// reports the missing link).
    private func recordsFromNewestSealBoxes() async throws(RingError) -> [RingIndex.ChainRow] {
        var rows: [RingIndex.ChainRow] = []
        for (path, seq) in try await index.unfiledSegments() {
            let abs = configuration.segmentsRoot + "/" + path
            guard let found = try await blocking({ SealBox.find(path: abs) }) else { continue }
            let sealed = SealedRecord(body: found.seal.record, signature: found.seal.signature)
            guard let record = try? ChainRecord.parse(sealed.body), record.seq == seq else { continue }
            rows.append(.init(sealed: sealed, record: record, segmentPath: path))
        }
        return rows
    }

    /// Files, from their seal boxes, the records a crash left unfiled (recovery, before anything
    /// is sealed).
    func fileUnfiledRecords() async throws(RingError) -> Int {
        guard unfiled.isEmpty else { return 0 }
        let rows = try await recordsFromNewestSealBoxes()
        try await index.file(rows)
        return rows.count
    }

    /// Files the waiting records now when any of `segments` is one of theirs (eviction keeps
    /// every record).
    func fileUnfiled(before segments: [Segment]) async throws(RingError) {
        guard segments.contains(where: { s in unfiled.contains { $0.segmentPath == s.path } }) else { return }
        try await fileWaiting()
    }

    /// Files every waiting record now (closing, `reindex`).
    func fileWaiting() async throws(RingError) {
        guard !unfiled.isEmpty else { return }
        try await index.file(unfiled)
        unfiled.removeAll()
    }

    /// The records an export of `from`–`to` carries: the one before the range, those that
    /// overlap it, and on to the first record the commune countersigned at or after its end.
    public func chainRecords(from: Timestamp, to: Timestamp) async throws(RingError) -> [SealedRecord] {
        let newest = try await unfiledRecords()
        let firstFiled = try await index.run("SELECT MIN(seq) AS s FROM chain WHERE end_ms > ?", [.integer(Int(from.milliseconds))])
            .first?.column("s")?.integer.map(Int64.init)
        let lastFiled = try await index.run("SELECT MAX(seq) AS s FROM chain WHERE start_ms < ?", [.integer(Int(to.milliseconds))])
            .first?.column("s")?.integer.map(Int64.init)
        let first = ([firstFiled] + newest.filter { $0.record.endMs > from.milliseconds }.map { Optional($0.record.seq) }).compactMap { $0 }.min()
        let last = ([lastFiled] + newest.filter { $0.record.startMs < to.milliseconds }.map { Optional($0.record.seq) }).compactMap { $0 }.max()
        guard let first, let last, last >= first else { return [] }
        let signed = try await index.run("SELECT MIN(seq) AS s FROM countersign WHERE seq >= ?", [.integer(Int(last))]).first?.column("s")?.integer
        let upTo = min(Int64(signed ?? Int(last)), last + Int64(Bundle.maxRecords / 2))
        return try await chain(after: max(0, first - 2), limit: Int(upTo - max(0, first - 2)))
    }

    /// Makes the segment's record, appends its seal box to the file and returns the file's
    /// new size and SHA-256 with the row for the index. A segment that cannot be sealed (the
    /// card full, a read error) is kept unsealed: footage is never dropped for want of a seal.
    func seal(_ finished: FinishedSegment, end: Timestamp, activity: ActivitySummary? = nil) async -> (Int64, String, RingIndex.ChainRow?) {
        guard let (key, device) = sealer else { return (finished.bytes, finished.sha256, nil) }
        do {
            let head = try await chainHead()
            let path = finished.path, mediaBytes = finished.bytes
            let hashed: PieceHasher
            if let h = finished.hashed, h.bytes == mediaBytes { hashed = h } else {
                guard let h = try await blocking({ PieceHasher.hash(path: path, count: mediaBytes) }) else {
                    throw RingError(.storage, "cannot read the segment to seal it", path: path)
                }
                hashed = h
            }
            let (mediaSHA, pieces) = hashed.finish()
            let o = finished.origin
            let record = ChainRecord(device: device, seq: (head?.seq ?? 0) + 1, prev: head?.hash ?? ChainRecord.genesis, kind: .segment,
                                     camera: o.camera, start: o.start, end: end, clockSynchronized: o.clockSynchronized,
                                     monotonicStartNs: o.monotonicNanos, bootID: o.bootID, file: path.lastPathPart,
                                     mediaBytes: mediaBytes, mediaSHA256: mediaSHA, pieces: pieces, codec: o.codec, activity: activity?.hex,
                                     software: software)
            let sealed = try SealedRecord.seal(record, with: key)
            // Gaps since the newest segment's record (none while a segment's waits unfiled).
            let gaps = unfiled.isEmpty ? try await index.trailingGaps(limit: SealBox.maxGaps) : []
            let box = SealBox(sealed: sealed, key: key.publicKeyBase64, gaps: gaps).encoded()
            try await blocking { try Self.append(box, to: path, at: mediaBytes) }
            var whole = hashed.wholeHasher
            box.withUnsafeBytes { whole.update(bufferPointer: $0) }
            let sha = hex(whole.finalize())
            return (mediaBytes + Int64(box.count), sha, .init(sealed: sealed, record: record, segmentPath: relative(path)))
        } catch {
            logger.error("evidence: segment left unsealed", metadata: ["path": "\(finished.path)", "error": "\(error)"])
            return (finished.bytes, finished.sha256, nil)
        }
    }

    /// The records a file's seal box holds that the index lacks, to insert with the segment;
    /// a record the index holds differently is named as a finding, never overwritten.
    func recordsToImport(from seal: SealBox, file: String) async throws(RingError) -> (rows: [RingIndex.ChainRow], problems: [Finding]) {
        var rows: [RingIndex.ChainRow] = [], problems: [Finding] = []
        let segmentBody = seal.record
        for sealed in seal.records {
            guard let record = try? ChainRecord.parse(sealed.body) else {
                problems.append(Finding(kind: .chainProblem, path: file, detail: "its seal box holds a record that cannot be read"))
                continue
            }
            if let held = try await index.chainHash(seq: record.seq) {
                if held != sealed.hash {
                    problems.append(Finding(kind: .chainProblem, path: file,
                                            detail: "its seal names record \(record.seq), which the index holds with other contents: both kept, the chain will not verify there"))
                }
                continue
            }
            rows.append(.init(sealed: sealed, record: record, segmentPath: sealed.body == segmentBody ? file : nil))
        }
        return (rows, problems)
    }

    /// Checks the index's chain (its newest `last` records, or all) with the box's public key:
    /// each problem as a finding (`check`, `reindex`).
    public func verifyChain(last: Int? = nil) async throws(RingError) -> [Finding] {
        var after: (seq: Int64, hash: String)?
        if let last, let head = try await chainHead(), head.seq > Int64(last) {
            let seq = head.seq - Int64(last)
            after = try await index.chainHash(seq: seq).map { (seq, $0) }
        }
        let sealed = try await chain(after: after?.seq ?? 0)
        guard let first = sealed.first, let record = try? ChainRecord.parse(first.body) else { return [] }
        guard let key = sealer?.key.publicKey ?? DeviceKey.readPublic(at: configuration.devicePublicKeyPath) else {
            return [Finding(kind: .chainProblem, path: "chain", detail: "the device's public key (\(configuration.devicePublicKeyPath)) is missing: the chain cannot be checked")]
        }
        var findings = ChainVerifier.verify(sealed, key: key, device: record.device, after: after).findings
        if after == nil, record.seq > 1 {
            findings.insert(.init(.missing, seq: 1, "records 1–\(record.seq - 1) are not in the index (their footage was evicted before the index was rebuilt, or they were removed)"), at: 0)
        }
        return findings.map { Finding(kind: .chainProblem, path: "chain", detail: $0.message) }
    }

    /// Countersignatures kept from the last day, and one an hour before it (the newest covers
    /// every record before it; older ones bound when those records were made more tightly),
    /// by the box's own clock when each was kept.
    static let countersignKeepAllSeconds: Int64 = 86_400

    /// Keeps the commune's countersignature of the head `sent`, once it is checked: the same
    /// device, sequence and hash, a valid signature, and the commune's key: `pinned` (the
    /// config's server.commune_key) or else the key of the first one this box kept. What is
    /// thinned is decided by the box's clock (`now`), never by the time the commune wrote in it.
    public func keep(_ c: Heartbeat.Countersign, sent: Heartbeat.ChainHead, device: String, pinned: String? = nil,
                     now: Timestamp = .now()) async throws(RingError) {
        guard c.device == device, c.seq == sent.seq, c.hash == sent.hash else {
            throw RingError(.invalidArgument, "the countersignature is not of the head this box sent")
        }
        guard c.deviceKey == nil || c.deviceKey == sent.publicKey else {
            throw RingError(.invalidArgument, "the countersignature names another device key than the one this box sent")
        }
        guard c.isValid() else { throw RingError(.invalidArgument, "the countersignature does not verify under the key it names") }
        try await index.transaction { db throws(RingError) in
            let held = try await db.run("SELECT public_key FROM commune_key WHERE id = 1").first?.column("public_key")?.string
            guard let key = pinned ?? held else {
                _ = try await db.run("INSERT INTO commune_key (id, public_key, pinned_ms) VALUES (1, ?, ?)", [.text(c.communeKey), .integer(Int(now.milliseconds))])
                return try await Self.insert(c, db: db, now: now)
            }
            guard c.communeKey == key else {
                throw RingError(.invalidArgument, "the countersignature is under a commune key that is not \(pinned == nil ? "the one this box pinned" : "server.commune_key"): not kept")
            }
            try await Self.insert(c, db: db, now: now)
        }
    }

    private static func insert(_ c: Heartbeat.Countersign, db: RingIndex.Statements, now: Timestamp) async throws(RingError) {
        _ = try await db.run("INSERT INTO countersign (seq, hash, received_ms, signature, commune_key, kept_ms, device_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [.integer(Int(c.seq)), .text(c.hash), .integer(Int(c.receivedAt.milliseconds)), .text(c.signature),
                              .text(c.communeKey), .integer(Int(now.milliseconds)), c.deviceKey.map { .text($0) } ?? .null])
        let cutoff = now.milliseconds - countersignKeepAllSeconds * 1000
        _ = try await db.run("""
            DELETE FROM countersign WHERE kept_ms < ?1
              AND id NOT IN (SELECT MIN(id) FROM countersign WHERE kept_ms < ?1 GROUP BY kept_ms / 3600000)
            """, [.integer(Int(cutoff))])
    }

    /// Keeps the commune's binding of this box's key (issue 23) once it is checked: its
    /// signature, this device, the key this box sent (`deviceKey`), and the commune key this box
    /// pinned (or `pinned`, the config's server.commune_key). The newest good one is kept.
    public func keep(_ b: KeyBinding, device: String, deviceKey: String, pinned: String? = nil, now: Timestamp = .now()) async throws(RingError) {
        guard b.isValid, b.device == device, b.deviceKey == deviceKey else {
            throw RingError(.invalidArgument, "the commune's key binding is not of this box's key, or does not verify: not kept")
        }
        let held = try await pinnedCommuneKey()
        guard let commune = pinned ?? held, commune == b.communeKey else {
            throw RingError(.invalidArgument, "the commune's key binding is under a commune key this box has not pinned: not kept")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = String(decoding: (try? encoder.encode(b)) ?? Data(), as: UTF8.self)
        if try await index.run("SELECT body FROM key_binding WHERE id = 1").first?.column("body")?.string == body { return }
        _ = try await index.run("INSERT OR REPLACE INTO key_binding (id, body, kept_ms) VALUES (1, ?, ?)", [.text(body), .integer(Int(now.milliseconds))])
    }

    /// The commune's binding of this box's key, when it has sent one.
    public func keyBinding() async throws(RingError) -> KeyBinding? {
        guard let body = try await index.run("SELECT body FROM key_binding WHERE id = 1").first?.column("body")?.string else { return nil }
        return try? JSONDecoder().decode(KeyBinding.self, from: Data(body.utf8))
    }

    /// The commune key this box pinned, if any.
    public func pinnedCommuneKey() async throws(RingError) -> String? {
        try await index.run("SELECT public_key FROM commune_key WHERE id = 1").first?.column("public_key")?.string
    }

    /// The countersignatures kept, oldest first.
    public func countersigns(device: String) async throws(RingError) -> [Heartbeat.Countersign] {
        try await index.run("SELECT seq, hash, received_ms, signature, commune_key, device_key FROM countersign ORDER BY seq, id").map {
            Heartbeat.Countersign(device: device, deviceKey: $0.column("device_key")?.string, seq: Int64($0.column("seq")?.integer ?? 0),
                                  hash: $0.column("hash")?.string ?? "",
                                  receivedAt: Timestamp(milliseconds: Int64($0.column("received_ms")?.integer ?? 0)),
                                  signature: $0.column("signature")?.string ?? "", communeKey: $0.column("commune_key")?.string ?? "")
        }
    }

    /// The record of a stretch with no footage.
    func sealGap(_ gap: Gap) async throws(RingError) -> RingIndex.ChainRow? {
        guard let (key, device) = sealer else { return nil }
        let head = try await chainHead()
        let record = ChainRecord(device: device, seq: (head?.seq ?? 0) + 1, prev: head?.hash ?? ChainRecord.genesis, kind: .gap,
                                 camera: gap.camera, start: gap.start, end: max(gap.end, gap.start), clockSynchronized: true,
                                 reason: String(gap.reason.prefix(ChainRecord.maxReasonCharacters / 2)), software: software)
        do {
            return .init(sealed: try SealedRecord.seal(record, with: key), record: record, segmentPath: nil)
        } catch {
            logger.error("evidence: gap left unsealed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Appends `box` at `offset` (the media's end) and makes it durable; on failure the file is
    /// cut back to its media so it stays the segment it was.
    static func append(_ box: [UInt8], to path: String, at offset: Int64) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RingError(.storage, "cannot open the segment to seal it: \(String(cString: strerror(errno)))", path: path) }
        defer { Glibc.close(fd) }
        var written = 0
        while written < box.count {
            let n = box.withUnsafeBytes { pwrite(fd, $0.baseAddress! + written, box.count - written, off_t(offset) + off_t(written)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let e = errno
                _ = ftruncate(fd, off_t(offset))
                throw RingError(.storage, "cannot write the seal: \(String(cString: strerror(e)))", path: path)
            }
            written += n
        }
        guard fdatasync(fd) == 0 else {
            let e = errno
            _ = ftruncate(fd, off_t(offset))
            throw RingError(.storage, "cannot make the seal durable: \(String(cString: strerror(e)))", path: path)
        }
    }
}
