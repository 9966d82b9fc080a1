import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Flags are police requests: they must outlive the index. Every flag, release and
/// acknowledged upload is also appended (and fdatasynced) to a journal beside the index, one
/// JSON line each; rebuilding a lost or corrupt index replays them, so no flag or pin is lost
/// and nothing uploaded goes twice. A line that cannot be read (torn by a power cut) is skipped
/// and counted.
extension Ring {
    struct JournalEntry: Codable {
        var op: String
        var flag: Flag?
        var id: Int64?
        var path: String?
    }

    func journal(_ entry: JournalEntry, to path: String) async {
        do {
            let line = String(decoding: try JSONEncoder().encode(entry), as: UTF8.self)
            try await blocking { try FileSystem.appendLine(line, to: path) }
        } catch {
            logger.error("journal write failed: the index still has it, a rebuild would not", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    func journalFlag(_ flag: Flag) async { await journal(.init(op: "flag", flag: flag), to: configuration.flagJournalPath) }
    func journalRelease(_ id: Int64) async { await journal(.init(op: "release", id: id), to: configuration.flagJournalPath) }
    func journalUploaded(_ path: String) async { await journal(.init(op: "uploaded", path: path), to: configuration.uploadJournalPath) }

    public struct Replay: Sendable, Equatable {
        public var flagsRestored = 0
        public var uploadsRestored = 0
        public var unreadableLines = 0
    }

    /// Puts every journaled flag the index lacks back (with its id), releases what was
    /// released, re-pins the segments in range and re-marks what was uploaded.
    @discardableResult
    public func replayJournals(now: Timestamp = .now()) async throws(RingError) -> Replay {
        var replay = Replay()
        let flagLines = try await blocking { Self.readLines(self.configuration.flagJournalPath) }
        var flags: [Int64: Flag] = [:]
        var released: Set<Int64> = []
        for line in flagLines {
            guard let e = try? JSONDecoder().decode(JournalEntry.self, from: Data(line.utf8)) else { replay.unreadableLines += 1; continue }
            if e.op == "flag", let f = e.flag { flags[f.id] = f }
            if e.op == "release", let id = e.id { released.insert(id) }
        }
        let known = Set(try await self.flags(includeReleased: true).map(\.id))
        let uploaded = try await blocking { Self.readLines(self.configuration.uploadJournalPath) }
        var uploadedPaths: [String] = []
        for line in uploaded {
            guard let e = try? JSONDecoder().decode(JournalEntry.self, from: Data(line.utf8)), let path = e.path else { replay.unreadableLines += 1; continue }
            uploadedPaths.append(path)
        }
        let restore = flags.values.sorted(by: { $0.id < $1.id }).filter { !known.contains($0.id) }
        let releasedKnown = released.filter { known.contains($0) }
        // All of it or nothing: a replay cut short by a power cut is simply run again.
        let counts = try await index.transaction { [released, uploadedPaths] db throws(RingError) -> (flags: Int, uploads: Int) in
            for f in restore {
                let state: Flag.State = released.contains(f.id) ? .released : (f.pinTo > now ? .open : .closed)
                _ = try await db.run("""
                    INSERT OR IGNORE INTO flag (id, camera, from_ms, to_ms, pin_from_ms, pin_to_ms, reason, source, request_id, created_ms, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [.integer(Int(f.id)), .text(f.camera), .integer(Int(f.from.milliseconds)), .integer(Int(f.to.milliseconds)),
                          .integer(Int(f.pinFrom.milliseconds)), .integer(Int(f.pinTo.milliseconds)), f.reason.map { .text($0) } ?? .null,
                          .text(f.source.rawValue), f.requestID.map { .text($0) } ?? .null, .integer(Int(f.createdAt.milliseconds)),
                          .text(state.rawValue)])
            }
            for id in releasedKnown {
                _ = try await db.run("UPDATE flag SET state = 'released' WHERE id = ?", [.integer(Int(id))])
            }
            var uploads = 0
            for path in uploadedPaths {
                uploads += try await db.run("UPDATE segment SET uploaded = 1 WHERE path = ? AND uploaded = 0 RETURNING id", [.text(path)]).count
            }
            _ = try await db.run("""
                UPDATE segment SET flagged = EXISTS (
                    SELECT 1 FROM flag f WHERE f.state != 'released' AND f.camera = segment.camera
                    AND segment.end_ms > f.pin_from_ms AND segment.start_ms < f.pin_to_ms)
                """)
            return (restore.count, uploads)
        }
        replay.flagsRestored = counts.flags
        replay.uploadsRestored = counts.uploads
        if replay != Replay() { logger.notice("journals replayed", metadata: ["flags": "\(replay.flagsRestored)", "uploads": "\(replay.uploadsRestored)", "unreadable_lines": "\(replay.unreadableLines)"]) }
        return replay
    }

    static func readLines(_ path: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
