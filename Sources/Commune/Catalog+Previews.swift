import SQLiteNIO
import Wire

/// Previews (issue 14): a request's keyframes as small pictures, uploaded by the box before its
/// video; and narrowing a request to the part the officer needs, after seeing them.
extension Catalog {
    /// Where a request's preview is: the whole file, or the part of one still arriving.
    public struct PreviewFile: Sendable, Equatable {
        public var path: String
        public var complete: Bool
        /// Pictures in the whole file (nil while it arrives: count them with a scan).
        public var pictures: Int?
        public var receivedAt: Timestamp?
    }

    /// Notes that upload `uploadID` carries `request`'s preview into `partPath`.
    public func previewUploadStarted(uploadID: String, request: String, partPath: String) async throws {
        _ = try await query("UPDATE upload SET preview_request = ?, part_path = ? WHERE id = ?",
                            [.text(request), .text(partPath), .text(uploadID)])
    }

    /// Files a whole, checked preview (replacing an earlier one of the same request) and ends its upload.
    public func filePreview(request: String, device: String, path: String, bytes: Int64, pictures: Int, sha256: String,
                            uploadID: String, now: Timestamp = .now()) async throws {
        try await transaction { db in
            _ = try await db.query("""
                INSERT OR REPLACE INTO preview (request, device, path, bytes, pictures, sha256, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [.text(request), .text(device), .text(path), .integer(Int(bytes)), .integer(pictures), .text(sha256),
                      .integer(Int(now.milliseconds))])
            _ = try await db.query("DELETE FROM upload WHERE id = ?", [.text(uploadID)])
        }
    }

    /// The request's preview: the whole one when it has arrived, else the newest upload of one.
    public func preview(request: String, now: Timestamp = .now()) async throws -> PreviewFile? {
        if let r = try await query("SELECT path, pictures, received_ms FROM preview WHERE request = ?", [.text(request)]).first,
           let path = r.column("path")?.string {
            return PreviewFile(path: path, complete: true, pictures: r.column("pictures")?.integer,
                               receivedAt: r.column("received_ms")?.integer.map { Timestamp(milliseconds: Int64($0)) })
        }
        let rows = try await query("""
            SELECT part_path FROM upload WHERE preview_request = ? AND expires_ms > ? AND part_path IS NOT NULL ORDER BY created_ms DESC LIMIT 1
            """, [.text(request), .integer(Int(now.milliseconds))])
        return rows.first?.column("part_path")?.string.map { PreviewFile(path: $0, complete: false, pictures: nil, receivedAt: nil) }
    }

    public enum NarrowError: Error, CustomStringConvertible {
        case noRequest(String)
        case outside(from: Timestamp, to: Timestamp)
        case settled
        public var description: String {
            switch self {
            case .noRequest(let id): "there is no request \(id) (commune requests lists them)"
            case .outside(let f, let t): "a request can only be narrowed inside its range, \(f.rfc3339) → \(t.rfc3339), and --to must be after --from"
            case .settled: "the request is complete: nothing of it is still on its way, so there is nothing to stop"
            }
        }
    }

    /// Narrows an open request to `from..<to` inside its range: at its next heartbeat the box
    /// narrows its flag, drops the pins it no longer needs and stops sending what is outside.
    /// Clips already received stay. The request's coverage is cut to the new range.
    public func narrow(request id: String, from: Timestamp, to: Timestamp, now: Timestamp = .now()) async throws -> Request {
        guard let r = try await requests(id: id).first else { throw NarrowError.noRequest(id) }
        guard to > from, from >= r.from, to <= r.to else { throw NarrowError.outside(from: r.from, to: r.to) }
        guard r.state != .complete else { throw NarrowError.settled }
        let coverage = Coverage.paint(from: from, to: to, base: .pending, layers: r.coverage)
        _ = try await query("UPDATE request SET from_ms = ?, to_ms = ?, coverage = ?, updated_ms = ? WHERE id = ?", [
            .integer(Int(from.milliseconds)), .integer(Int(to.milliseconds)),
            .text(String(decoding: try Heartbeat.encode(coverage), as: UTF8.self)), .integer(Int(now.milliseconds)), .text(id),
        ])
        return try await requests(id: id).first!
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension Catalog.PreviewFile {
    /// The pictures in the file now (blocking: call it off the event loop). A file still
    /// arriving gives those whole so far; a missing one gives none.
    public func scan() throws -> PreviewSheet.Scan {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return PreviewSheet.Scan() }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return PreviewSheet.Scan() }
        return try PreviewSheet.scan(size: Int(st.st_size), whole: complete) { offset, count in
            try TusEndpoint.pread(fd, offset: offset, count: count)
        }
    }

    /// The pictures in time order, each with the file name `commune requests --preview --out`
    /// writes it under: `REQUEST-TIME.jpg`, and `-2`, `-3`, … for pictures of the same
    /// millisecond (one overwrote the other: issue 22).
    public static func fileNames(request id: String, _ entries: [PreviewSheet.Entry]) -> [(PreviewSheet.Entry, String)] {
        var seen: [Timestamp: Int] = [:]
        return entries.sorted { ($0.at, $0.offset) < ($1.at, $1.offset) }.map { entry in
            let n = seen[entry.at, default: 0] + 1
            seen[entry.at] = n
            return (entry, "\(id)-\(entry.at.compact)\(n > 1 ? "-\(n)" : "").jpg")
        }
    }

    /// One picture's JPEG (blocking).
    public func jpeg(_ entry: PreviewSheet.Entry) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CommuneError("the preview is gone") }
        defer { close(fd) }
        let bytes = try TusEndpoint.pread(fd, offset: entry.offset, count: entry.length)
        guard bytes.count == entry.length else { throw CommuneError("the preview is shorter than it was") }
        return bytes
    }
}
