import Crypto
import Foundation
import Wire

/// What `junction verify` and `commune verify` answer about a bundle, with no network and no
/// index: authentic (every seal and link holds, no byte changed) and complete from `from` to
/// `to` except the stretches listed, with the evidence about time.
public struct BundleReport: Codable, Sendable {
    /// A stretch of the range and why (the manifest's `Hole`).
    public typealias Stretch = EvidenceManifest.Hole

    public struct TimeEvidence: Codable, Sendable {
        /// Every record of the range was made with the box's clock synchronised.
        public var clockSynchronized: Bool
        /// The commune received (and countersigned) a chain head covering the range at this
        /// time: the footage existed by then, by the commune's clock.
        public var countersignedAt: Timestamp?
        public var countersignedRecord: Int64?
        public var communeKey: String?
        enum CodingKeys: String, CodingKey {
            case clockSynchronized = "clock_synchronized", countersignedAt = "countersigned_at"
            case countersignedRecord = "countersigned_record", communeKey = "commune_key_fingerprint"
        }
    }

    public var authentic: Bool
    public var complete: Bool
    public var device: String
    public var from: Timestamp
    public var to: Timestamp
    public var deviceKey: String?
    public var verifiedSegments: Int
    /// Stretches the box declared it has no footage of (camera down, box off…).
    public var declaredGaps: [Stretch]
    /// Recorded and sealed, but the footage is not in the bundle (overwritten, damaged).
    public var missingFootage: [Stretch]
    /// Stretches no record covers: nothing says what happened then.
    public var undeclared: [Stretch]
    public var time: TimeEvidence
    /// What is wrong: a changed byte, a removed or moved record, a foreign key, an edited manifest.
    public var problems: [String]

    enum CodingKeys: String, CodingKey {
        case authentic, complete, device, from, to, time, problems
        case deviceKey = "device_key_fingerprint", verifiedSegments = "verified_segments", declaredGaps = "declared_gaps"
        case missingFootage = "missing_footage", undeclared
    }
}

public enum BundleVerifier {
    /// Finds the manifest: `path` is one (`*.manifest.json`), or a folder holding exactly one.
    public static func manifestPath(_ path: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue { return path }
        let found = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".manifest.json") }
        return found.count == 1 ? path + "/" + found[0] : nil
    }

    public static func verify(manifest manifestPath: String) -> BundleReport {
        let dir = (manifestPath as NSString).deletingLastPathComponent
        var problems: [String] = []
        guard let data = FileManager.default.contents(atPath: manifestPath), data.count <= 64 << 20,
              let manifest = try? JSONDecoder().decode(EvidenceManifest.self, from: data) else {
            return failed("\(manifestPath) is not an export manifest")
        }
        var report = BundleReport(authentic: false, complete: false, device: manifest.device, from: manifest.from, to: manifest.to,
                                  verifiedSegments: 0, declaredGaps: [], missingFootage: [], undeclared: [],
                                  time: .init(clockSynchronized: false), problems: [])
        guard let proofName = manifest.proof, !proofName.isEmpty, !proofName.contains("/"), !proofName.hasPrefix("."), proofName.utf8.count <= 255 else {
            report.problems = ["the export carries no proof folder: it cannot be checked (made by a junction without sealing)"]
            return report
        }
        let proof = dir + "/" + proofName
        guard let keyText = FileManager.default.contents(atPath: proof + "/" + Bundle.keyFile).map({ String(decoding: $0.prefix(200), as: UTF8.self) }),
              let key = DeviceKey.publicKey(base64: keyText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            report.problems = ["\(Bundle.keyFile) is missing or not an Ed25519 public key"]
            return report
        }
        report.deviceKey = DeviceKey.fingerprint(of: key)
        var chain: [SealedRecord] = []
        for (n, line) in readLines(proof + "/" + Bundle.chainFile, problems: &problems).enumerated() {
            guard let s = try? JSONDecoder().decode(SealedRecord.self, from: Data(line.utf8)) else {
                problems.append("\(Bundle.chainFile) line \(n + 1) is not a sealed record")
                continue
            }
            chain.append(s)
        }
        let (records, findings) = ChainVerifier.verify(chain, key: key, device: manifest.device)
        problems += findings.map(\.message)

        // The range, record by record.
        let inRange = records.filter { $0.endMs > manifest.from.milliseconds && $0.startMs < manifest.to.milliseconds }
        var covered: [(Timestamp, Timestamp)] = []
        let sources = Dictionary(manifest.segments.map { (($0.file as NSString).lastPathComponent, $0) }, uniquingKeysWith: { a, _ in a })
        for r in inRange {
            covered.append((r.start, r.end))
            switch r.kind {
            case .gap:
                report.declaredGaps.append(.init(from: r.start, to: r.end, reason: r.reason ?? "not recorded"))
            case .segment:
                let name = r.file ?? ""
                let path = proof + "/" + Bundle.segmentsDir + "/" + name
                guard PlainName.isValid(name), FileManager.default.fileExists(atPath: path) else {
                    let why = sources[name]?.verified == false ? "damaged on the box" : "not in the bundle (overwritten by the ring, or left out)"
                    report.missingFootage.append(.init(from: r.start, to: r.end, reason: why))
                    continue
                }
                if let problem = ChainVerifier.verifyFile(path: path, record: r) {
                    problems.append("record \(r.seq): \(problem.message)")
                    continue
                }
                report.verifiedSegments += 1
                // The file is the one sealed: the manifest's word on it must be the file's.
                if let listed = sources[name], listed.verified, let sha = try? sha256(path), sha != listed.sha256 {
                    problems.append("the manifest gives \(name) a sha256 that is not the file's: the manifest was edited")
                }
            }
        }
        for s in manifest.segments where s.verified {
            let name = (s.file as NSString).lastPathComponent
            if !inRange.contains(where: { $0.file == name }) {
                problems.append("the manifest lists \(name), which no sealed record of the range names: the manifest was edited")
            }
        }
        for part in manifest.parts {
            let path = dir + "/" + (part.file as NSString).lastPathComponent
            if let sha = try? sha256(path), sha != part.sha256 {
                problems.append("\((part.file as NSString).lastPathComponent) is not the joined MP4 its manifest describes (sha256 differs)")
            }
        }
        report.undeclared = EvidenceManifest.holes(from: manifest.from, to: manifest.to, covered: covered.sorted { $0.0 < $1.0 })
            .map { .init(from: $0.from, to: $0.to, reason: "no record covers it") }
        report.time.clockSynchronized = !inRange.isEmpty && inRange.allSatisfy(\.clockSynchronized)

        // The commune's countersignatures: each must verify, be of this device and name a record
        // the chain holds with the same hash; one past the chain's end means its tail was cut.
        let bySeq = Dictionary(zip(records.map(\.seq), chain.map(\.hash)), uniquingKeysWith: { a, _ in a })
        let lastSeq = records.last?.seq ?? 0, rangeEnd = inRange.last?.seq ?? lastSeq
        var countersigns: [Heartbeat.Countersign] = []
        for (n, line) in readLines(proof + "/" + Bundle.countersignFile, problems: &problems).enumerated() {
            guard let c = try? JSONDecoder().decode(Heartbeat.Countersign.self, from: Data(line.utf8)) else {
                problems.append("\(Bundle.countersignFile) line \(n + 1) is not a countersignature")
                continue
            }
            countersigns.append(c)
        }
        for c in countersigns {
            guard c.isValid(), c.device == manifest.device else {
                problems.append("a countersignature of record \(c.seq) does not verify (altered, or not for \(manifest.device))")
                continue
            }
            if let hash = bySeq[c.seq] {
                if hash != c.hash { problems.append("record \(c.seq) is not the one the commune countersigned on \(c.receivedAt): the chain was rewritten after") }
                else if c.seq >= rangeEnd, report.time.countersignedRecord.map({ c.seq < $0 }) ?? true {
                    report.time.countersignedRecord = c.seq
                    report.time.countersignedAt = c.receivedAt
                    report.time.communeKey = DeviceKey.publicKey(base64: c.communeKey).map(DeviceKey.fingerprint(of:))
                }
            } else if c.seq > lastSeq {
                problems.append("the commune countersigned record \(c.seq) on \(c.receivedAt), but the chain given ends at record \(lastSeq): records \(lastSeq + 1)–\(c.seq) were cut")
            }
        }
        report.problems = problems
        report.authentic = problems.isEmpty
        report.complete = report.authentic && report.undeclared.isEmpty && report.missingFootage.isEmpty
        return report
    }

    static func failed(_ why: String) -> BundleReport {
        BundleReport(authentic: false, complete: false, device: "", from: Timestamp(milliseconds: 0), to: Timestamp(milliseconds: 0),
                     verifiedSegments: 0, declaredGaps: [], missingFootage: [], undeclared: [], time: .init(clockSynchronized: false),
                     problems: [why])
    }

    static func readLines(_ path: String, problems: inout [String]) -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            problems.append("\((path as NSString).lastPathComponent) is missing from the proof folder")
            return []
        }
        guard data.count <= Bundle.maxChainBytes else {
            problems.append("\((path as NSString).lastPathComponent) is over \(Bundle.maxChainBytes) bytes")
            return []
        }
        return Array(String(decoding: data, as: UTF8.self).split(separator: "\n").prefix(Bundle.maxRecords).map(String.init))
    }

    static func sha256(_ path: String) throws -> String {
        guard let h = PieceHasher.hash(path: path, count: (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0) else {
            throw ChainError.storage("cannot read \(path)")
        }
        return h.finish().sha256
    }

    /// The report in words, as the CLIs print it.
    public static func render(_ r: BundleReport) -> String {
        var lines: [String] = []
        let range = "\(r.from) to \(r.to)"
        if !r.authentic {
            lines.append("NOT AUTHENTIC: \(r.device) \(range)")
            lines += r.problems.map { "  ✘ " + $0 }
        } else if r.complete && r.declaredGaps.isEmpty {
            lines.append("AUTHENTIC AND COMPLETE: \(r.device), \(range), \(r.verifiedSegments) sealed segments, no gap")
        } else if r.complete {
            lines.append("AUTHENTIC AND COMPLETE EXCEPT THE GAPS THE BOX DECLARED: \(r.device), \(range), \(r.verifiedSegments) sealed segments")
        } else {
            lines.append("AUTHENTIC, BUT NOT COMPLETE: \(r.device), \(range), \(r.verifiedSegments) sealed segments")
        }
        for g in r.declaredGaps { lines.append("  gap declared by the box: \(g.from) → \(g.to) (\(g.reason))") }
        for m in r.missingFootage { lines.append("  footage recorded but not here: \(m.from) → \(m.to) (\(m.reason))") }
        for u in r.undeclared { lines.append("  NOT ACCOUNTED FOR: \(u.from) → \(u.to) (no record covers it)") }
        if let k = r.deviceKey { lines.append("  device key \(k)") }
        lines.append("  box clock " + (r.time.clockSynchronized ? "synchronised for all of it" : "NOT synchronised for some of it: the box's times may be off"))
        if let at = r.time.countersignedAt, let seq = r.time.countersignedRecord {
            lines.append("  the commune (key \(r.time.communeKey ?? "?")) countersigned record \(seq) on \(at): the footage existed by then")
        } else {
            lines.append("  no countersignature covers the range: its time rests on the box's clock alone")
        }
        return lines.joined(separator: "\n")
    }
}
