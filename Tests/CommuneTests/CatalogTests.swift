import Foundation
import Logging
import SQLiteNIO
import Testing
import Wire
@testable import Commune

/// Issue 11, "found by reading the code": the catalog's schema changes all or nothing, a newer
/// catalog is refused, and a clip is filed and its upload forgotten in one transaction.
@Suite struct CatalogTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!

    func freshPath() throws -> String {
        let dir = NSTemporaryDirectory() + "catalog-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/catalog.sqlite"
    }

    func raw(_ path: String, _ statements: [String]) async throws -> [SQLiteRow] {
        let c = try await SQLiteConnection.open(storage: .file(path: path), logger: Logger(label: "t"))
        var last: [SQLiteRow] = []
        do {
            for s in statements { last = try await c.query(s, []) }
        } catch {
            try await c.close()  // a connection must be closed before it goes, even when a statement failed
            throw error
        }
        try await c.close()
        return last
    }

    @Test func aCatalogFromANewerCommuneIsRefusedUntouched() async throws {
        let path = try freshPath()
        await (try Catalog.open(path: path, logger: Logger(label: "t"))).close()
        _ = try await raw(path, ["PRAGMA user_version = 99"])
        await #expect {
            _ = try await Catalog.open(path: path, logger: Logger(label: "t"))
        } throws: { error in
            "\(error)".contains("newer commune") && "\(error)".contains("update the commune server")
        }
        let version = try await raw(path, ["PRAGMA user_version"]).first?.column("user_version")?.integer
        #expect(version == 99, "left as it was found")
    }

    /// Migration 10 makes the clip table again so that a clip may be `damaged` (issue 22): every
    /// clip of a schema-9 catalog is kept, with its index, and a damaged clip can then be filed.
    @Test func migrationTenKeepsEveryClipAndTakesDamagedOnes() async throws {
        let path = try freshPath()
        let upTo9 = Catalog.migrations.prefix(9).flatMap { $0.split(separator: ";").map(String.init).filter { !$0.allSatisfy(\.isWhitespace) } }
        _ = try await raw(path, upTo9 + [
            "INSERT INTO clip (device, camera, start_ms, end_ms, bytes, sha256, path, received_ms, proof, proof_detail, chain_seq) VALUES ('b', 'c', 1, 2, 3, 'h', '/p', 4, 'failed', 'why', 7)",
            "PRAGMA user_version = 9"])
        await #expect(throws: (any Error).self, "schema 9 refuses a damaged clip") {
            _ = try await self.raw(path, ["INSERT INTO clip (device, camera, start_ms, end_ms, bytes, sha256, path, received_ms, proof) VALUES ('b', 'c', 1, 2, 3, 'h', '/q', 4, 'damaged')"])
        }
        let catalog = try await Catalog.open(path: path, logger: Logger(label: "t"))
        do { try await migratedCatalogTakesDamagedClips(catalog) } catch { Issue.record(error) }
        await catalog.close()
    }

    func migratedCatalogTakesDamagedClips(_ catalog: Catalog) async throws {
        let kept = try await catalog.clips()
        #expect(kept.count == 1 && kept.first?.proof == "failed" && kept.first?.proofDetail == "why" && kept.first?.chainSeq == 7 && kept.first?.path == "/p")
        _ = try await catalog.addDevice(id: "b")
        try await catalog.createUpload(.init(id: "u1", device: "b", length: 1, offset: 1, metadata: "", expires: t0 + 60))
        try await catalog.fileClip(.init(path: "/q", device: "b", camera: "c", start: t0, end: t0 + 1, bytes: 1, sha256: "h", request: nil, reason: nil,
                                         receivedAt: t0, proof: "damaged", proofDetail: "lost: fragment 3", chainSeq: 8), uploadID: "u1")
        #expect(try await catalog.clips().map(\.proof).sorted() == ["damaged", "failed"])
        let indexes = try await catalog.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'clip' AND name = 'clip_by_device'", [])
        #expect(indexes.count == 1)
    }

    /// Migration 12 gives clips the upload they finished; clips filed before it keep theirs
    /// unnamed (a HEAD on such an old upload still gets 404, as it did).
    @Test func migrationTwelveKeepsOldClipsWithoutAnUpload() async throws {
        let path = try freshPath()
        let upTo11 = Catalog.migrations.prefix(11).flatMap { $0.split(separator: ";").map(String.init).filter { !$0.allSatisfy(\.isWhitespace) } }
        _ = try await raw(path, upTo11 + [
            "INSERT INTO clip (device, camera, start_ms, end_ms, bytes, sha256, path, received_ms, proof) VALUES ('b', 'c', 1, 2, 3, 'h', '/p', 4, 'verified')",
            "PRAGMA user_version = 11"])
        let catalog = try await Catalog.open(path: path, logger: Logger(label: "t"))
        #expect(try await catalog.clips().map(\.path) == ["/p"])
        #expect(try await catalog.clip(upload: "u-old", device: "b") == nil)
        #expect(try await catalog.clip(device: "b", start: Timestamp(milliseconds: 1), sha256: "h", request: nil)?.path == "/p")
        #expect(try await catalog.clip(device: "b", start: Timestamp(milliseconds: 1), sha256: "h", request: "r1") == nil)
        await catalog.close()
    }

    @Test func aMigrationThatFailsRollsBackToTheSchemaItFound() async throws {
        let path = try freshPath()
        // A catalog at schema 1 in which migration 2 cannot run (its table is already there).
        let first = Catalog.migrations[0].split(separator: ";").map(String.init).filter { !$0.allSatisfy(\.isWhitespace) }
        _ = try await raw(path, first + ["PRAGMA user_version = 1", "CREATE TABLE operator (x INTEGER)"])
        await #expect(throws: (any Error).self) { _ = try await Catalog.open(path: path, logger: Logger(label: "t")) }
        let version = try await raw(path, ["PRAGMA user_version"]).first?.column("user_version")?.integer
        let request = try await raw(path, ["SELECT name FROM sqlite_master WHERE name = 'request'"])
        #expect(version == 1 && request.isEmpty, "no half-applied migration: version \(version ?? -1), request table \(request.count)")
    }

    @Test func aClipIsFiledAndItsUploadForgottenTogether() async throws {
        let catalog = try await Catalog.open(path: try freshPath(), logger: Logger(label: "t"))
        _ = try await catalog.addDevice(id: "box-a")
        for id in ["u1", "u2"] {
            try await catalog.createUpload(.init(id: id, device: "box-a", length: 10, offset: 10, metadata: "", expires: t0 + 86400), now: t0)
        }
        let clip = Catalog.Clip(path: "/data/box-a/cam1/a.mp4", device: "box-a", camera: "cam1", start: t0, end: t0 + 10, bytes: 10,
                                sha256: String(repeating: "a", count: 64), request: nil, reason: nil, receivedAt: t0)
        try await catalog.fileClip(clip, uploadID: "u1")
        #expect(try await catalog.upload(id: "u1") == nil)
        #expect(try await catalog.clips().map(\.path) == [clip.path])
        // Filing fails (that path is taken): the upload is still there to be finished again.
        await #expect(throws: (any Error).self) { try await catalog.fileClip(clip, uploadID: "u2") }
        #expect(try await catalog.upload(id: "u2") != nil, "a failed filing keeps its upload")
        #expect(try await catalog.clips().count == 1)
        #expect(try await catalog.bytesHeld(device: "box-a", now: t0) == 20, "the clip and the upload still waiting: nothing counted twice")
        await catalog.close()
    }

    /// Issue 11, item 5: reading requests paints only the clips received since the box's last
    /// report (which painted all of them), so its work follows what changed, not the request's size.
    @Test func readingARequestPaintsOnlyTheClipsSinceItsLastReport() async throws {
        let catalog = try await Catalog.open(path: try freshPath(), logger: Logger(label: "t"))
        _ = try await catalog.addDevice(id: "box-a")
        let request = try await catalog.addRequest(device: "box-a", camera: nil, from: t0, to: t0 + 100, reason: nil, now: t0)
        func clip(_ from: Double, _ to: Double, receivedAt: Double, _ n: Int) async throws {
            try await catalog.createUpload(.init(id: "u\(n)", device: "box-a", length: 1, offset: 1, metadata: "", expires: t0 + 86400), now: t0)
            try await catalog.fileClip(.init(path: "/d/\(n).mp4", device: "box-a", camera: "cam1", start: t0 + from, end: t0 + to, bytes: 1,
                                             sha256: String(repeating: "b", count: 64), request: nil, reason: nil, receivedAt: t0 + receivedAt),
                                       uploadID: "u\(n)")
        }
        try await catalog.report(device: "box-a", .init(id: request.id, coverage: [.init(from: t0, to: t0 + 100, status: .pending)]), now: t0 + 200)
        // Arrived after the report: painted when read.
        try await clip(0, 50, receivedAt: 300, 1)
        // Planted with an arrival before the report that the stored coverage lacks: a read does
        // not look at it (the report painted every clip it could see), the next report does.
        try await clip(50, 60, receivedAt: 100, 2)
        let read = try #require(try await catalog.requests(id: request.id).first)
        #expect(read.state == .accepted)
        #expect(read.coverage == [.init(from: t0, to: t0 + 50, status: .uploaded), .init(from: t0 + 50, to: t0 + 100, status: .pending)])
        try await catalog.report(device: "box-a", .init(id: request.id, coverage: [.init(from: t0, to: t0 + 100, status: .pending)]), now: t0 + 400)
        let after = try #require(try await catalog.requests(id: request.id).first)
        #expect(after.coverage == [.init(from: t0, to: t0 + 60, status: .uploaded), .init(from: t0 + 60, to: t0 + 100, status: .pending)])
        await catalog.close()
    }
}
