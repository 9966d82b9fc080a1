import SystemCrypto
@testable import Evidence
import Foundation
import Hostile
import Testing
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The committed test vectors of the bundle format (issue 23; `Sources/Evidence/BUNDLE-FORMAT.md`):
/// small bundles from a synthetic recording, a genuine one and one per tamper and per rule, each
/// with the verdict and exit status the table `Tests/Vectors/verdicts.tsv` gives it. This suite
/// makes them again and requires the committed ones to be byte for byte what it makes (so they
/// stay what Junction writes), and runs Junction's verifier over each. `make vectors` writes them
/// (`JUNCTION_WRITE_VECTORS=1`); `Tests/Vectors/verify.py`, written from the format document
/// alone, runs over the same table in `make test`.
@Suite struct VectorTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path + "/Vectors"

    // TEST-ONLY keys: the seeds are published here, so nothing they sign is evidence of anything.
    static func key(_ byte: UInt8) -> DeviceKey { DeviceKey(try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: byte, count: 32))) }
    static let box = key(0x01), commune = key(0x02), forger = key(0x03), forgersCommune = key(0x04), otherCommune = key(0x05)

    static let device = "thaithuy-0042", camera = "cam1"
    static let t0 = Timestamp(milliseconds: 1_795_946_400_000)  // 2026-11-29T10:00:00Z
    static let stem = "thaithuy-0042-cam1-20261129T100000.000Z"

    struct Built {
        var records: [ChainRecord] = []
        var sealed: [SealedRecord] = []
        var files: [String: [UInt8]] = [:]   // segment name → media + seal box
        var media: [String: [UInt8]] = [:]
    }

    /// The synthetic recording: three 2-s segments, a declared gap of 4 s (camera down), two
    /// more segments; then one segment after the range, whose head the commune countersigned.
    static func recording() throws -> Built {
        var b = Built()
        var prev = ChainRecord.genesis
        var at = t0
        func add(_ r: ChainRecord, media: [UInt8]?) throws {
            let s = try SealedRecord.seal(r, with: box)
            b.records.append(r)
            b.sealed.append(s)
            if let media, let file = r.file {
                b.media[file] = media
                b.files[file] = media + SealBox(sealed: s, key: box.publicKeyBase64).encoded()
            }
            prev = s.hash
        }
        func segment(seconds: Double) throws {
            let (bytes, _) = FragmentedMP4.segment(fragments: 2, payload: 300)
            var h = PieceHasher()
            h.update(bytes)
            let (sha, pieces) = h.finish()
            let seq = Int64(b.records.count + 1)
            let r = ChainRecord(device: device, seq: seq, prev: prev, kind: .segment, camera: camera, start: at, end: at + seconds,
                                clockSynchronized: true, monotonicStartNs: at.milliseconds * 1_000_000 - 1_795_900_000_000_000_000, bootID: "test-boot",
                                file: at.compact + ".mp4", mediaBytes: Int64(bytes.count), mediaSHA256: sha, pieces: pieces, codec: "h264")
            try add(r, media: bytes)
            at = at + seconds
        }
        for _ in 0..<3 { try segment(seconds: 2) }
        let gap = ChainRecord(device: device, seq: Int64(b.records.count + 1), prev: prev, kind: .gap, camera: camera, start: at, end: at + 4,
                              clockSynchronized: true, reason: "camera down")
        try add(gap, media: nil)
        at = at + 4
        for _ in 0..<3 { try segment(seconds: 2) }
        return b
    }

    static let rangeEnd = t0 + 14   // records 1–6 cover 10:00:00–10:00:14; record 7 (10:00:14–16) is past it, countersigned

    /// Writes the genuine bundle into `dir`: as `junction export` makes it, signed by the box.
    static func genuine(into dir: String, signer: ManifestSeal.Signer = .box) throws {
        let b = try recording()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let proof = dir + "/" + stem + ".proof"
        let inRange = b.records.filter { $0.kind == .segment && $0.end <= rangeEnd }
        var joined: [UInt8] = []
        for r in inRange { joined += b.media[r.file!]! }
        try Data(joined).write(to: URL(fileURLWithPath: dir + "/" + stem + ".mp4"))
        let segDir = NSTemporaryDirectory() + "vec-src-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: segDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: segDir) }
        for (name, bytes) in b.files { try Data(bytes).write(to: URL(fileURLWithPath: segDir + "/" + name)) }
        let last = b.sealed.last!
        let head = b.records.last!
        let c = try Heartbeat.Countersign.make(device: device, deviceKey: box.publicKeyBase64, seq: head.seq, hash: last.hash,
                                               receivedAt: head.end + 3, key: commune)
        let binding = try KeyBinding.make(device: device, deviceKey: box.publicKeyBase64, boundAt: t0 - 86_400, key: commune)
        try Bundle.writeProof(into: proof, publicKey: box.publicKeyBase64, chain: b.sealed, countersigns: [c], binding: binding,
                              segments: inRange.map { ($0.file!, segDir + "/" + $0.file!) })
        let sha = { (bytes: [UInt8]) in hex(SHA256.hash(data: bytes)) }
        var m = EvidenceManifest(device: device, camera: camera, from: t0, to: rangeEnd, exportedAt: t0 + 3600, junctionVersion: "vectors",
                                 clockSynchronized: true,
                                 parts: [.init(file: stem + ".mp4", bytes: Int64(joined.count), sha256: sha(joined), from: t0, to: rangeEnd, segments: inRange.count)],
                                 segments: inRange.map { .init(file: $0.file!, start: $0.start, end: $0.end, bytes: Int64(b.files[$0.file!]!.count),
                                                               sha256: sha(b.files[$0.file!]!), verified: true, part: 1) },
                                 gaps: [.init(from: t0 + 6, to: t0 + 10, reason: "camera down")])
        m.proof = stem + ".proof"
        if signer == .commune { m.request = "VV-2026-0001"; m.reason = "tai nạn giao thông"; m.exportedBy = "nguyenvana"; m.junctionVersion = "commune" }
        try writeManifest(m, dir: dir, signer: signer)
    }

    static func writeManifest(_ m: EvidenceManifest, dir: String, signer: ManifestSeal.Signer = .box, key: DeviceKey? = nil) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = dir + "/" + stem + ".manifest.json"
        try (e.encode(m) + Data([0x0A])).write(to: URL(fileURLWithPath: path))
        try Bundle.signManifest(at: path, proof: dir + "/" + m.proof!, signer: signer, key: key ?? (signer == .box ? box : commune))
    }

    static func manifest(_ dir: String) throws -> EvidenceManifest {
        try JSONDecoder().decode(EvidenceManifest.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/" + stem + ".manifest.json")))
    }

    /// Re-made by its exporter: edited, then signed again.
    static func reexport(_ dir: String, signer: ManifestSeal.Signer = .box, key: DeviceKey? = nil, _ edit: (inout EvidenceManifest) -> Void) throws {
        var m = try manifest(dir)
        edit(&m)
        try writeManifest(m, dir: dir, signer: signer, key: key)
    }

    static func proof(_ dir: String) -> String { dir + "/" + stem + ".proof" }
    static func segments(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: proof(dir) + "/segments").sorted().map { proof(dir) + "/segments/" + $0 }
    }
    static func chainLines(_ dir: String) throws -> [String] {
        try String(contentsOfFile: proof(dir) + "/" + Bundle.chainFile, encoding: .utf8).split(separator: "\n").map(String.init)
    }
    static func writeChain(_ dir: String, _ lines: [String], ending: String = "\n") throws {
        try (lines.joined(separator: ending) + ending).write(toFile: proof(dir) + "/" + Bundle.chainFile, atomically: false, encoding: .utf8)
    }
    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
    static func put(_ path: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    static func resealed(_ s: SealedRecord, _ key: DeviceKey) throws -> SealedRecord {
        SealedRecord(body: s.body, signature: try key.sign(Data(("junction-seal/1\n" + s.hash).utf8)).base64EncodedString())
    }

    static func forgeBoxKey(_ dir: String) throws {
        // Every record and seal box re-sealed under the forger's key, which replaces the box's.
        let lines = try chainLines(dir).map { String(decoding: try JSONEncoder.vectors.encode(try resealed(try JSONDecoder().decode(SealedRecord.self, from: Data($0.utf8)), forger)), as: UTF8.self) }
        try writeChain(dir, lines)
        for file in try segments(dir) {
            let (offset, seal) = SealBox.find(path: file)!
            try put(file, Array(try bytes(file).prefix(Int(offset))) + SealBox(sealed: try resealed(seal.sealed, forger), key: forger.publicKeyBase64).encoded())
        }
        try (forger.publicKeyBase64 + "\n").write(toFile: proof(dir) + "/" + Bundle.keyFile, atomically: false, encoding: .utf8)
        try reexport(dir, key: forger) { m in
            for i in m.segments.indices { m.segments[i].sha256 = hex(SHA256.hash(data: (try? bytes(proof(dir) + "/segments/" + m.segments[i].file)) ?? [])) }
        }
    }

    /// Every case: its name and how it is made from the genuine bundle in its folder.
    static let cases: [(String, @Sendable (String) throws -> Void)] = [
        ("genuine", { _ in }),
        ("genuine-desk", { dir in try FileManager.default.removeItem(atPath: dir); try genuine(into: dir, signer: .commune) }),
        ("forged-box-key", { dir in try forgeBoxKey(dir) }),
        ("forged-binding", { dir in
            try forgeBoxKey(dir)
            let b = try KeyBinding.make(device: device, deviceKey: forger.publicKeyBase64, boundAt: t0, key: forgersCommune)
            try (JSONEncoder.vectors.encode(b) + Data([0x0A])).write(to: URL(fileURLWithPath: proof(dir) + "/" + Bundle.bindingFile))
            try Data().write(to: URL(fileURLWithPath: proof(dir) + "/" + Bundle.countersignFile))
        }),
        ("binding-altered", { dir in
            let path = proof(dir) + "/" + Bundle.bindingFile
            try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "2026-11-28T10:00:00Z", with: "2026-11-28T11:00:00Z")
                .write(toFile: path, atomically: false, encoding: .utf8)
        }),
        ("binding-missing", { dir in try FileManager.default.removeItem(atPath: proof(dir) + "/" + Bundle.bindingFile) }),
        ("flipped-byte", { dir in
            let file = try segments(dir)[1]
            var b = try bytes(file); b[b.count / 3] ^= 0x01; try put(file, b)
        }),
        ("seal-box-edited", { dir in
            let file = try segments(dir)[0]
            let (offset, seal) = SealBox.find(path: file)!
            var edited = seal
            edited.record = edited.record.replacingOccurrences(of: "\"codec\":\"h264\"", with: "\"codec\":\"h265\"")
            try put(file, Array(try bytes(file).prefix(Int(offset))) + edited.encoded())
        }),
        ("seal-box-stripped", { dir in
            let file = try segments(dir)[0]
            let (offset, _) = SealBox.find(path: file)!
            try put(file, Array(try bytes(file).prefix(Int(offset))))
        }),
        ("junk-after-seal-box", { dir in let file = try segments(dir)[0]; try put(file, try bytes(file) + Array("junk".utf8)) }),
        ("swapped-segments", { dir in
            let f = try segments(dir)
            let a = try bytes(f[0]), b = try bytes(f[1]); try put(f[0], b); try put(f[1], a)
        }),
        ("record-removed", { dir in
            var l = try chainLines(dir); l.remove(at: 1); try writeChain(dir, l)
            try FileManager.default.removeItem(atPath: try segments(dir)[1])
        }),
        ("tail-cut", { dir in
            // The last two records dropped: the countersignature names record 7.
            var l = try chainLines(dir); l.removeLast(2); try writeChain(dir, l)
            try FileManager.default.removeItem(atPath: try segments(dir).last!)
        }),
        ("stray-sealed-tail", { dir in
            // The chain cut after record 4, the countersignature removed: the files of records 5 and 6 show the cut.
            var l = try chainLines(dir); l.removeLast(3); try writeChain(dir, l)
            try Data().write(to: URL(fileURLWithPath: proof(dir) + "/" + Bundle.countersignFile))
        }),
        ("extra-file", { dir in try put(proof(dir) + "/segments/extra.bin", [UInt8](repeating: 7, count: 64)) }),
        ("symlink-segment", { dir in
            let file = try segments(dir)[2]
            try FileManager.default.removeItem(atPath: file)
            _ = symlink("/etc/hostname", file)
        }),
        ("unknown-proof-file", { dir in try put(proof(dir) + "/notes.txt", Array("left by someone\n".utf8)) }),
        ("chain-crlf", { dir in try writeChain(dir, try chainLines(dir), ending: "\r\n") }),
        ("chain-blank-lines", { dir in try writeChain(dir, try chainLines(dir).flatMap { [$0, ""] }) }),
        ("manifest-crlf", { dir in
            let path = dir + "/" + stem + ".manifest.json"
            try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "\n", with: "\r\n").write(toFile: path, atomically: false, encoding: .utf8)
        }),
        ("manifest-unsigned", { dir in try FileManager.default.removeItem(atPath: proof(dir) + "/" + ManifestSeal.file) }),
        ("manifest-edited", { dir in
            // The joined MP4's hash changed after signing.
            let path = dir + "/" + stem + ".manifest.json"
            var m = try manifest(dir); m.parts[0].sha256 = String(repeating: "0", count: 64)
            let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try (e.encode(m) + Data([0x0A])).write(to: URL(fileURLWithPath: path))
        }),
        ("manifest-time-resigned", { dir in try reexport(dir) { $0.segments[1].start = $0.segments[1].start + 1 } }),
        ("manifest-camera-resigned", { dir in try reexport(dir) { $0.camera = "cam2" } }),
        ("manifest-gap-hidden-resigned", { dir in try reexport(dir) { $0.gaps = [] } }),
        ("manifest-mp4-replaced", { dir in try put(dir + "/" + stem + ".mp4", Array("not the joined footage".utf8)) }),
        ("manifest-signed-by-other-commune", { dir in try reexport(dir, signer: .commune, key: otherCommune) { _ in } }),
        ("countersigns-empty", { dir in try Data().write(to: URL(fileURLWithPath: proof(dir) + "/" + Bundle.countersignFile)) }),
        ("countersigns-missing", { dir in try FileManager.default.removeItem(atPath: proof(dir) + "/" + Bundle.countersignFile) }),
        ("segment-not-here", { dir in
            // An exporter that lacked the second segment: footage recorded but not here.
            let gone = try segments(dir)[1]
            let name = (gone as NSString).lastPathComponent
            try FileManager.default.removeItem(atPath: gone)
            try reexport(dir) { m in
                m.segments.removeAll { $0.file == name }
                m.gaps.insert(.init(from: t0 + 2, to: t0 + 4, reason: "not recorded"), at: 0)
            }
        }),
        ("unreadable", { dir in try put(dir + "/" + stem + ".manifest.json", Array("{ not json".utf8)) }),
    ]

    /// Writes every case under `root/cases/NAME/`.
    static func writeAll(to root: String) throws {
        try? FileManager.default.removeItem(atPath: root + "/cases")
        for (name, make) in cases {
            let dir = root + "/cases/" + name
            try genuine(into: dir)
            try make(dir)
        }
    }

    /// Each file of a tree, as (relative path, bytes or link target).
    static func tree(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        for case let rel as String in FileManager.default.enumerator(atPath: root)?.allObjects ?? [] {
            let path = root + "/" + rel
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) { out[rel] = "link → " + target; continue }
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = (try? Data(contentsOf: URL(fileURLWithPath: path))).map { hex(SHA256.hash(data: $0)) } ?? "?"
            }
        }
        return out
    }

    @Test func theCommittedVectorsAreWhatJunctionMakes() throws {
        if ProcessInfo.processInfo.environment["JUNCTION_WRITE_VECTORS"] == "1" { try Self.writeAll(to: Self.root) }
        let fresh = NSTemporaryDirectory() + "vectors-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: fresh) }
        try Self.writeAll(to: fresh)
        let made = Self.tree(fresh + "/cases"), committed = Self.tree(Self.root + "/cases")
        #expect(!made.isEmpty)
        for key in Set(made.keys).union(committed.keys).sorted() where made[key] != committed[key] {
            Issue.record("Tests/Vectors/cases/\(key) differs from what the code makes now: run make vectors and commit them")
        }
    }

    struct Row { var name: String; var trust: String; var exit: Int32; var verdict: String; var says: String }

    static func table() throws -> [Row] {
        try String(contentsOfFile: root + "/verdicts.tsv", encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
            let f = $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Row(name: f[0], trust: f[1], exit: Int32(f[2])!, verdict: f[3], says: f.count > 4 ? f[4] : "")
        }
    }

    @Test func everyVectorGetsTheVerdictItsTableGives() throws {
        let rows = try Self.table()
        #expect(Set(rows.map(\.name)) == Set(Self.cases.map(\.0)), "every case has a row and every row a case")
        #expect(Set(rows.map(\.verdict)) == Set(["authentic_complete", "authentic_incomplete", "not_authentic", "consistent_unanchored", "unreadable"]),
                "every verdict and exit status is in the table")
        for row in rows {
            let trusted: [Curve25519.Signing.PublicKey] = switch row.trust {
            case "commune": [Self.commune.publicKey]
            case "other": [Self.otherCommune.publicKey]
            default: []
            }
            let (report, status) = VerifyCommand.run(path: Self.root + "/cases/" + row.name, trusting: trusted)
            #expect(status == row.exit && report.verdict.rawValue == row.verdict, "\(row.name): \(status) \(report.verdict) \(report.problems)")
            if !row.says.isEmpty {
                #expect(BundleVerifier.render(report).contains(row.says), "\(row.name): \(BundleVerifier.render(report))")
            }
        }
    }
}

extension JSONEncoder {
    static var vectors: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
