#if canImport(Glibc)
import Glibc
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
                if let repaired = try await repair(abs) {
                    try await index.update(id: row.id, end: row.start + repaired.scan.durationSeconds,
                                           bytes: repaired.scan.validLength, sha256: repaired.sha256)
                    findings.append(Finding(kind: .sizeMismatch, path: row.path, detail: "was \(size) bytes, indexed \(row.bytes); cut back to \(repaired.scan.validLength)"))
                } else {
                    dropped.append(row.id)
                    findings.append(Finding(kind: .sizeMismatch, path: row.path, detail: "unreadable; removed"))
                }
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

    /// Indexes a file that has no row: cut back to its last whole fragment, or delete it.
    func adopt(_ file: String, flagged: Bool = false, uploaded: Bool = false) async throws(RingError) -> Finding {
        let abs = configuration.segmentsRoot + "/" + file
        guard file.hasSuffix(".mp4") else {
            try await blocking { try FileSystem.remove(abs) }
            return Finding(kind: .orphanRemoved, path: file, detail: "not a segment file; removed")
        }
        guard let repaired = try await repair(abs), let comment = repaired.scan.comment,
              let origin = SegmentOrigin(comment: comment) else {
            try await blocking { try FileSystem.remove(abs) }
            return Finding(kind: .orphanRemoved, path: file, detail: "no whole fragment or no recorder metadata; removed")
        }
        try await index.insert(relativePath: file, origin: origin, end: origin.start + repaired.scan.durationSeconds,
                               bytes: repaired.scan.validLength, sha256: repaired.sha256, recovered: true,
                               flagged: flagged, uploaded: uploaded)
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
                    findings.append(Finding(kind: .hashMismatch, path: row.path, detail: "SHA-256 differs from the one recorded: the file was altered or the card is failing"))
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
        let u = try await usage()
        if u.ringBytes > u.budgetBytes + u.headroomBytes {
            findings.append(Finding(kind: .overBudget, path: configuration.root,
                                    detail: "ring holds \(u.ringBytes) bytes, budget is \(u.budgetBytes)"))
        }
        return findings
    }

    /// Rebuilds the index from the segment files alone. Flag and upload marks of files already
    /// indexed are kept; everything else comes from the files.
    public func reindex() async throws(RingError) -> (segments: Int, findings: [Finding]) {
        let previous = (try? await index.segments(camera: nil, from: nil, to: nil, includeDeleting: true)) ?? []
        let marks = Dictionary(previous.map { ($0.path, ($0.flagged, $0.uploaded)) }, uniquingKeysWith: { a, _ in a })
        try await index.deleteAllSegments()
        let root = configuration.segmentsRoot
        let files = try await blocking { FileSystem.walk(root).files }
        var findings: [Finding] = []
        var count = 0
        for file in files {
            let mark = marks[file] ?? (false, false)
            let f = try await adopt(file, flagged: mark.0, uploaded: mark.1)
            if f.kind == .orphanRemoved { findings.append(f) } else { count += 1 }
            if f.kind == .tornSegmentRepaired { findings.append(f) }
        }
        try await removeEmptyDirectories()
        return (count, findings)
    }
}

extension String {
    init(format1 value: Double) {
        let r = (value * 10).rounded() / 10
        self = String(r)
    }
}

extension Ring {
    /// A segment the recorder could not finish (disk full, I/O error): cut back to its last whole
    /// fragment and index it, so what was recorded is kept.
    public func adoptFailed(path absolute: String) async throws(RingError) -> Finding {
        try await adopt(relative(absolute))
    }
}
