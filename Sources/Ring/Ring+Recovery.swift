import Activity
import Evidence
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Start-up recovery, `check` and `reindex`: see the invariants on `Ring`.
extension Ring {
    /// One thing recovery or check found, in words for the log and the technician.
    public struct Finding: Sendable, Equatable, Codable, CustomStringConvertible {
        public enum Kind: String, Sendable, Codable {
            case tornSegmentRepaired = "torn_segment_repaired"
            case orphanIndexed = "orphan_indexed"
            case orphanRemoved = "orphan_removed"
            case rowWithoutFile = "row_without_file"
            case halfDeleted = "half_deleted"
            case sizeMismatch = "size_mismatch"
            case hashMismatch = "hash_mismatch"
            case overlap
            case overBudget = "over_budget"
            case indexCorrupt = "index_corrupt"
            case strayFile = "stray_file"
            /// A damaged file moved out of the ring, untouched, into `quarantine/`.
            case quarantined
            /// The index was corrupt and was rebuilt from the files and the journals.
            case indexRebuilt = "index_rebuilt"
            /// The evidence chain has a broken, missing or conflicting link (issue 13).
            case chainProblem = "chain_problem"
        }
        public var kind: Kind
        public var path: String
        public var detail: String
        public var description: String { "\(kind.rawValue): \(path): \(detail)" }
    }

    /// Brings the index and the files back to the invariants after a crash or power cut.
    /// - Parameter skipping: a path being written right now (never touched).
    @discardableResult
    public func recover(skipping open: String? = nil) async throws(RingError) -> [Finding] {
        var findings: [Finding] = []

        // Chain records the last run had not filed yet: back from their seal boxes, before
        // anything new is sealed after them.
        let filed = try await fileUnfiledRecords()
        if filed > 0 { logger.info("recovery: filed \(filed) chain records from their segments' seal boxes") }

        // Half-deleted: the row said "deleting"; finish the job.
        let deleting = try await index.deleting()
        if !deleting.isEmpty {
            let paths = deleting.map { path(of: $0) }
            try await blocking { for p in paths { try FileSystem.remove(p) } }
            try await index.drop(deleting.map(\.id))
            findings += deleting.map { Finding(kind: .halfDeleted, path: $0.path, detail: "deletion finished") }
        }

        let rows = try await index.segments(camera: nil, from: nil, to: nil)
        let root = configuration.segmentsRoot
        let files = try await blocking { FileSystem.walk(root).files }
        let indexed = Dictionary(rows.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let onDisk = Set(files)

        // Rows without files, and rows whose file changed size.
        var dropped: [Int64] = []
        for row in rows {
            let abs = path(of: row)
            guard onDisk.contains(row.path) else {
                dropped.append(row.id)
                findings.append(Finding(kind: .rowWithoutFile, path: row.path, detail: "file missing; row dropped"))
                continue
            }
            let size = try await blocking { FileSystem.size(abs) } ?? -1
            if size != row.bytes {
                // A finished segment never changes size: this one was damaged after it was
                // written. Its recorded hash is the evidence; the file is kept aside, untouched.
                dropped.append(row.id)
                findings.append(try await quarantine(row.path, why: "it has \(size) bytes but \(row.bytes) were recorded"))
            }
        }
        try await index.drop(dropped)

        // Orphans: files without rows.
        for file in files where indexed[file] == nil {
            let abs = root + "/" + file
            if abs == open { continue }
            findings.append(try await adopt(file))
        }
        try await removeEmptyDirectories()
        for f in findings { logger.notice("recovery: \(f)") }
        return findings
    }

    /// Moves a damaged file to `quarantine/` (kept byte for byte) and says so.
    func quarantine(_ file: String, why: String) async throws(RingError) -> Finding {
        let abs = configuration.segmentsRoot + "/" + file
        let root = configuration.quarantineRoot
        let moved = try await blocking { try FileSystem.quarantine(abs, relative: file, quarantineRoot: root) }
        let shown = moved.hasPrefix(configuration.root + "/") ? String(moved.dropFirst(configuration.root.count + 1)) : moved
        logger.error("damaged segment quarantined", metadata: ["path": "\(file)", "why": "\(why)", "kept_as": "\(moved)"])
        return Finding(kind: .quarantined, path: file,
                       detail: "DAMAGED: \(why). Kept untouched as \(shown); its footage is no longer in the ring and is not vouched for")
    }

    /// Files this small hold at most a header: nothing a person could recover.
    static let headerOnlyBytes: Int64 = 4096

    /// Indexes a file that has no row: cut back to its last whole fragment (the torn tail a power
    /// cut leaves in the segment being written), or, when nothing in it can be indexed, move it
    /// to quarantine (only a header-sized stub is deleted).
    func adopt(_ file: String, flagged: Bool = false, uploaded: Bool = false) async throws(RingError) -> Finding {
        let abs = configuration.segmentsRoot + "/" + file
        let size = try await blocking { FileSystem.size(abs) } ?? 0
        guard file.hasSuffix(".mp4") else {
            if size <= Self.headerOnlyBytes {
                try await blocking { try FileSystem.remove(abs) }
                return Finding(kind: .orphanRemoved, path: file, detail: "not a segment file (\(size) bytes); removed")
            }
            return try await quarantine(file, why: "not a segment file")
        }
        guard let repaired = try await repair(abs), let comment = repaired.scan.comment,
              let origin = SegmentOrigin(comment: comment) else {
            if size <= Self.headerOnlyBytes {
                try await blocking { try FileSystem.remove(abs) }
                return Finding(kind: .orphanRemoved, path: file, detail: "no whole fragment (\(size) bytes: a header at most); removed")
            }
            return try await quarantine(file, why: "no whole fragment or no recorder metadata could be read")
        }
        let end = origin.start + repaired.scan.durationSeconds
        // Its seal: carried in the file (a power cut after sealing, or a rebuilt index) and put
        // back in the index; or, for a file the recorder never finished, made now.
        var bytes = repaired.scan.validLength, sha = repaired.sha256
        var rows: [RingIndex.ChainRow] = [], sealProblems: [Finding] = []
        var own: SealedRecord?
        if let (_, seal) = try await blocking({ SealBox.find(path: abs) }) {
            (rows, sealProblems) = try await recordsToImport(from: seal, file: file)
            own = SealedRecord(body: seal.record, signature: seal.signature)
        } else if isSealing {
            let sealed = await self.seal(FinishedSegment(path: abs, origin: origin, bytes: bytes, sha256: sha,
                                                         durationSeconds: repaired.scan.durationSeconds), end: end)
            (bytes, sha) = (sealed.0, sealed.1)
            rows = sealed.2.map { [$0] } ?? []
        }
        // Its activity summary comes back from its own sealed record (issue 14).
        let ownRecord = (own?.body).flatMap { try? ChainRecord.parse($0) }
        let activity = ownRecord?.activity.flatMap { try? ActivitySummary(hex: $0) }
        try await index.insert(relativePath: file, origin: origin, end: end, bytes: bytes, sha256: sha, recovered: true,
                               flagged: flagged, uploaded: uploaded, chain: rows.last, activity: activity)
        try await index.insertChain(Array(rows.dropLast()))
        // A record the index already held (reindex keeps the chain): the segment names it again.
        if let r = ownRecord, let own, try await index.chainHash(seq: r.seq) == own.hash {
            _ = try await index.run("UPDATE segment SET chain_seq = ? WHERE path = ? AND chain_seq IS NULL", [.integer(Int(r.seq)), .text(file)])
        }
        for p in sealProblems { logger.error("recovery: \(p)") }
        if repaired.cut > 0 {
            return Finding(kind: .tornSegmentRepaired, path: file,
                           detail: "cut \(repaired.cut) bytes of a torn fragment; \(repaired.scan.fragments) whole fragments, \(String(format1: repaired.scan.durationSeconds)) s kept")
        }
        return Finding(kind: .orphanIndexed, path: file, detail: "indexed (\(String(format1: repaired.scan.durationSeconds)) s)")
    }

    struct Repaired: Sendable { var scan: MP4Scan; var sha256: String; var cut: Int64 }

    /// Scans a segment file and cuts it back to its last whole fragment. Nil: nothing usable.
    func repair(_ abs: String) async throws(RingError) -> Repaired? {
        try await blocking { () throws -> Repaired? in
            guard let scan = try? MP4Scanner.scan(path: abs), scan.fragments > 0, scan.validLength > 0 else { return nil }
            var cut: Int64 = 0
            if scan.isTorn {
                cut = scan.fileLength - scan.validLength
                try FileSystem.truncate(abs, to: scan.validLength)
            }
            return Repaired(scan: scan, sha256: try FileSystem.sha256(abs), cut: cut)
        }
    }

    func removeEmptyDirectories() async throws(RingError) {
        let root = configuration.segmentsRoot
        try await blocking {
            // Deepest first; rmdir fails harmlessly on non-empty directories.
            for dir in FileSystem.walk(root).directories.reversed() {
                _ = rmdir(root + "/" + dir)
            }
        }
    }

    /// Chain records `check` verifies without `deep` (a day of 10 s segments, ~0.5 s of CPU).
    static let chainRecordsChecked = 10_000

    /// Verifies every invariant without changing anything.
    /// - Parameters:
    ///   - deep: also re-hash every file (reads the whole ring).
    ///   - open: the segment the daemon is writing right now (not an orphan).
    /// - Parameter recorderRunning: the recorder is writing: files newer than the newest indexed
    ///   one (the open segment, or one finished while this check ran) are not strays.
    public func check(deep: Bool, skipping open: String? = nil, recorderRunning: Bool = false) async throws(RingError) -> [Finding] {
        var findings: [Finding] = []
        let integrity = try await index.integrityCheck()
        if integrity != "ok" {
            findings.append(Finding(kind: .indexCorrupt, path: configuration.indexPath, detail: integrity))
        }
        let deleting = try await index.deleting()
        for d in deleting {
            findings.append(Finding(kind: .halfDeleted, path: d.path, detail: "row marked deleting (recovery at next start finishes it)"))
        }
        let rows = try await index.segments(camera: nil, from: nil, to: nil)
        let root = configuration.segmentsRoot
        let files = try await blocking { FileSystem.walk(root).files }
        let onDisk = Set(files)
        var last: [String: Segment] = [:]
        for row in rows {
            let abs = path(of: row)
            if !onDisk.contains(row.path) {
                findings.append(Finding(kind: .rowWithoutFile, path: row.path, detail: "indexed but the file is missing"))
                continue
            }
            let size = try await blocking { FileSystem.size(abs) } ?? -1
            if size != row.bytes {
                findings.append(Finding(kind: .sizeMismatch, path: row.path, detail: "file has \(size) bytes, index says \(row.bytes)"))
            } else if deep {
                let sha = try await blocking { try FileSystem.sha256(abs) }
                if sha != row.sha256 {
                    // The seal in the file (if the change spared it) says which fragment changed.
                    let which = try await blocking { () -> String? in
                        guard let (_, seal) = SealBox.find(path: abs), let record = try? ChainRecord.parse(seal.record) else { return nil }
                        return ChainVerifier.verifyFile(path: abs, record: record)?.message
                    }
                    findings.append(Finding(kind: .hashMismatch, path: row.path,
                                            detail: "SHA-256 differs from the one recorded: the file was altered or the card is failing" + (which.map { " (\($0))" } ?? "")))
                }
            }
            if let prev = last[row.camera], prev.end.milliseconds - row.start.milliseconds > 500 {
                findings.append(Finding(kind: .overlap, path: row.path, detail: "starts \(row.start) before \(prev.path) ends \(prev.end)"))
            }
            last[row.camera] = row
        }
        let indexedPaths = Set(rows.map(\.path) + deleting.map(\.path))
        let newest = rows.map(\.path).max() ?? ""
        for file in files where !indexedPaths.contains(file) && root + "/" + file != open && !(recorderRunning && file > newest) {
            findings.append(Finding(kind: .strayFile, path: file, detail: "file not in the index (recovery at next start indexes or removes it)"))
        }
        for q in try await quarantined() {
            findings.append(Finding(kind: .quarantined, path: "quarantine/" + q,
                                    detail: "a damaged segment kept aside (not in the ring, not uploaded); copy it off for the case file, then delete it"))
        }
        let dir = FileSystem.parent(of: configuration.indexPath)
        let base = String(configuration.indexPath.dropFirst(dir.count + 1))
        let broken = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.hasPrefix(base + ".broken-") } ?? []
        for b in broken.sorted() {
            findings.append(Finding(kind: .indexRebuilt, path: dir + "/" + b,
                                    detail: "the index was corrupt and was rebuilt from the files and the flag journal; the old one is kept here"))
        }
        // The evidence chain: every link of it with `deep`, else its newest day or so.
        findings += try await verifyChain(last: deep ? nil : Self.chainRecordsChecked)
        let u = try await usage()
        if u.ringBytes > u.budgetBytes + u.headroomBytes {
            findings.append(Finding(kind: .overBudget, path: configuration.root,
                                    detail: "ring holds \(u.ringBytes) bytes, budget is \(u.budgetBytes)"))
        }
        return findings
    }

    /// Rebuilds the index from the segment files alone. Flag and upload marks of files already
    /// indexed are kept; everything else comes from the files.
    ///
    /// A file the old index knew must still have the size and SHA-256 recorded when it was
    /// written (that hash is the evidence, never replaced): one that does not is damaged and is
    /// moved to quarantine untouched, never cut back, re-hashed or deleted. Flags and uploads
    /// come back from the journals.
    public func reindex() async throws(RingError) -> (segments: Int, findings: [Finding]) {
        try await fileWaiting()
        let previous = (try? await index.segments(camera: nil, from: nil, to: nil, includeDeleting: true)) ?? []
        let known = Dictionary(previous.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        try await index.deleteAllSegments()
        let root = configuration.segmentsRoot
        let files = try await blocking { FileSystem.walk(root).files }
        var findings: [Finding] = []
        var count = 0
        for file in files {
            if let row = known[file] {
                let abs = root + "/" + file
                let (size, sha) = try await blocking { (FileSystem.size(abs) ?? -1, try FileSystem.sha256(abs)) }
                guard size == row.bytes, sha == row.sha256 else {
                    findings.append(try await quarantine(file, why: size != row.bytes
                        ? "it has \(size) bytes but \(row.bytes) were recorded when it was written"
                        : "its SHA-256 differs from the one recorded when it was written"))
                    continue
                }
            }
            let mark = known[file].map { ($0.flagged, $0.uploaded) } ?? (false, false)
            let f = try await adopt(file, flagged: mark.0, uploaded: mark.1)
            switch f.kind {
            case .orphanRemoved, .quarantined: findings.append(f)
            case .tornSegmentRepaired: findings.append(f); count += 1
            default: count += 1
            }
        }
        try await removeEmptyDirectories()
        try await replayJournals()
        findings += try await verifyChain()
        return (count, findings)
    }

    /// Files in quarantine, relative to it.
    public func quarantined() async throws(RingError) -> [String] {
        let root = configuration.quarantineRoot
        return try await blocking { FileSystem.walk(root).files }
    }
}


extension Ring {
    /// A segment the recorder could not finish (disk full, I/O error): cut back to its last whole
    /// fragment and index it, so what was recorded is kept.
    public func adoptFailed(path absolute: String) async throws(RingError) -> Finding {
        try await adopt(relative(absolute))
    }
}

extension Ring {
    /// SQLite's quick check of the index: "ok", or what is wrong.
    public func integrityCheck() async throws(RingError) -> String {
        try await index.integrityCheck()
    }
}
