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
    /// Bounds the verifier holds a bundle to (README, "Limits"), each checked before a file is
    /// read: a manifest of at most 64 MiB listing at most 10^6 segments and 10^4 joined parts;
    /// countersignatures at most 16 MiB; the chain `Bundle.maxChainBytes` and `Bundle.maxRecords`,
    /// read line by line, a line at most twice a record's bound. At most `maxProblems` problems
    /// are listed (the rest counted), so 200 000 garbage lines print one screen, not 200 000.
    public static let maxManifestBytes = 64 << 20
    public static let maxManifestSegments = 1_000_000
    public static let maxManifestParts = 10_000
    public static let maxCountersignBytes = 16 << 20
    public static let maxLineBytes = 2 * ChainRecord.maxBodyBytes + 4096
    public static let maxProblems = 50

    /// Finds the manifest: `path` is one (`*.manifest.json`), or a folder holding exactly one.
    public static func manifestPath(_ path: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue { return path }
        let found = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".manifest.json") }
        return found.count == 1 ? path + "/" + found[0] : nil
    }

    /// The folder a manifest's proof and parts are in: a bare name ("NAME.manifest.json", run
    /// from the bundle's own folder) is in ".", not "/" (issue 23: it looked at the root).
    static func folder(of manifestPath: String) -> String {
        let parent = (manifestPath as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// Problems as they are found, the first `maxProblems` of them kept.
    struct Problems {
        var list: [String] = []
        var more = 0
        mutating func add(_ p: String) { if list.count < BundleVerifier.maxProblems { list.append(p) } else { more += 1 } }
        var isEmpty: Bool { list.isEmpty && more == 0 }
        var all: [String] { more == 0 ? list : list + ["… and \(more) more problems"] }
    }

    public static func verify(manifest manifestPath: String) -> BundleReport {
        let dir = folder(of: manifestPath)
        var problems = Problems()
        let manifest: EvidenceManifest
        switch readFile(manifestPath, max: maxManifestBytes) {
        case .data(let data):
            guard let m = try? JSONDecoder().decode(EvidenceManifest.self, from: data) else { return failed("\(manifestPath) is not an export manifest") }
            guard m.segments.count <= maxManifestSegments, m.parts.count <= maxManifestParts else {
                return failed("\(manifestPath) lists \(m.segments.count) segments and \(m.parts.count) parts: at most \(maxManifestSegments) and \(maxManifestParts)")
            }
            manifest = m
        case .problem(let why): return failed("\(manifestPath): \(why)")
        }
        var report = BundleReport(authentic: false, complete: false, device: manifest.device, from: manifest.from, to: manifest.to,
                                  verifiedSegments: 0, declaredGaps: [], missingFootage: [], undeclared: [],
                                  time: .init(clockSynchronized: false), problems: [])
        guard let proofName = manifest.proof, !proofName.isEmpty, !proofName.contains("/"), !proofName.hasPrefix("."), proofName.utf8.count <= 255 else {
            report.problems = ["the export carries no proof folder: it cannot be checked (made by a junction without sealing)"]
            return report
        }
        let proof = dir + "/" + proofName
        guard case .data(let keyData) = readFile(proof + "/" + Bundle.keyFile, max: 200),
              let key = DeviceKey.publicKey(base64: String(decoding: keyData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            report.problems = ["\(Bundle.keyFile) is missing or not an Ed25519 public key"]
            return report
        }
        report.deviceKey = DeviceKey.fingerprint(of: key)

        // The countersignatures first: the chain's walk keeps the hashes of the records they name.
        var countersigns: [Heartbeat.Countersign] = []
        switch readFile(proof + "/" + Bundle.countersignFile, max: maxCountersignBytes) {
        case .data(let data):
            forEachLine(of: data) { n, line in
                guard let c = try? JSONDecoder().decode(Heartbeat.Countersign.self, from: line) else {
                    problems.add("\(Bundle.countersignFile) line \(n) is not a countersignature")
                    return
                }
                countersigns.append(c)
            }
        case .problem(let why): problems.add("\(Bundle.countersignFile): \(why)")
        }
        let named = Set(countersigns.map(\.seq))

        // The files in segments/, each to be named by a record (issue 23): at most
        // `maxManifestSegments` names are held; more is itself a problem.
        let segmentsPath = proof + "/" + Bundle.segmentsDir
        var unnamed = Set(((try? FileManager.default.contentsOfDirectory(atPath: segmentsPath)) ?? []).prefix(maxManifestSegments + 1))
        if unnamed.count > maxManifestSegments { problems.add("\(Bundle.segmentsDir)/ holds more than \(maxManifestSegments) files") }

        // The chain, one line at a time: each record is checked and, in the range, its file.
        let sources = Dictionary(manifest.segments.map { (($0.file as NSString).lastPathComponent, $0) }, uniquingKeysWith: { a, _ in a })
        var walker = ChainVerifier.Walker(key: key, device: manifest.device)
        var covered: [(Timestamp, Timestamp)] = [], namedInRange = Set<String>(), hashBySeq: [Int64: String] = [:]
        var lastSeq: Int64 = 0, rangeEnd: Int64?, inRange = 0, allSynchronized = true, records = 0
        let walked = forEachLine(path: proof + "/" + Bundle.chainFile) { n, line in
            records += 1
            guard records <= Bundle.maxRecords else {
                if records == Bundle.maxRecords + 1 { problems.add("\(Bundle.chainFile) holds more than \(Bundle.maxRecords) records: the rest is not read") }
                return false
            }
            guard let sealed = line.map({ try? JSONDecoder().decode(SealedRecord.self, from: $0) }) ?? nil else {
                problems.add(line == nil ? "\(Bundle.chainFile) line \(n) is over \(maxLineBytes) bytes" : "\(Bundle.chainFile) line \(n) is not a sealed record")
                return true
            }
            let (record, findings) = walker.next(sealed)
            findings.forEach { problems.add($0.message) }
            guard let r = record else { return true }
            lastSeq = r.seq
            if let f = r.file { unnamed.remove(f) }
            if named.contains(r.seq) { hashBySeq[r.seq] = sealed.hash }
            guard r.endMs > manifest.from.milliseconds && r.startMs < manifest.to.milliseconds else { return true }
            inRange += 1
            rangeEnd = r.seq
            allSynchronized = allSynchronized && r.clockSynchronized
            covered.append((r.start, r.end))
            switch r.kind {
            case .gap:
                report.declaredGaps.append(.init(from: r.start, to: r.end, reason: r.reason ?? "not recorded"))
            case .segment:
                let name = r.file ?? ""
                namedInRange.insert(name)
                let path = proof + "/" + Bundle.segmentsDir + "/" + name
                var st = stat()
                guard PlainName.isValid(name), lstat(path, &st) == 0 else {
                    let why = sources[name]?.verified == false ? "damaged on the box" : "not in the bundle (overwritten by the ring, or left out)"
                    report.missingFootage.append(.init(from: r.start, to: r.end, reason: why))
                    return true
                }
                // Only plain files: a symlink could point at anything on the verifying machine.
                guard (st.st_mode & S_IFMT) == S_IFREG else {
                    problems.add("record \(r.seq): \(Bundle.segmentsDir)/\(name) is \((st.st_mode & S_IFMT) == S_IFLNK ? "a symbolic link" : "not a plain file"): a bundle holds its segments themselves")
                    return true
                }
                let sealed = sealProblem(path: path, record: r, sealed: sealed, key: key)
                if let sealed, sealed.contains("swapped or replayed") {
                    problems.add("record \(r.seq): \(name): \(sealed)")
                    return true
                }
                if let problem = ChainVerifier.verifyFile(path: path, record: r) {
                    // Declared damaged on the box (issue 22): its intact fragments are vouched
                    // for by the seal, the lost seconds are footage recorded but not here.
                    if problem.kind == .changedBytes, sources[name]?.verified == false, let damage = FragmentMap.damage(path: path, record: r) {
                        for run in damage.lost {
                            let which = run.first == run.last ? "fragment \(run.first)" : "fragments \(run.first)–\(run.last)"
                            report.missingFootage.append(.init(from: run.from, to: run.to,
                                reason: "damaged on the box's card: \(which) of \(name) do not match their seal\(damage.exactTimes ? "" : ", times approximate")"))
                        }
                        if !damage.headerIntact {
                            report.missingFootage.append(.init(from: r.start, to: r.start, reason: "damaged on the box's card: the header of \(name) (it needs one to play)"))
                        }
                        return true
                    }
                    problems.add("record \(r.seq): \(problem.message)")
                    return true
                }
                // Every byte after the media is the seal box, and the seal box is this record's
                // (issue 23: an edited or stripped seal box, or bytes after it, passed).
                if let problem = sealed {
                    problems.add("record \(r.seq): \(name): \(problem)")
                    return true
                }
                report.verifiedSegments += 1
                // The file is the one sealed: the manifest's word on it must be the file's.
                if let listed = sources[name], listed.verified, let sha = try? sha256(path), sha != listed.sha256 {
                    problems.add("the manifest gives \(name) a sha256 that is not the file's: the manifest was edited")
                }
                // And the times a person reads in it are the record's (issue 23: an edited start
                // passed). A record made before the box's clock was synchronised is re-timed from
                // the monotonic clock afterwards (Ring.retime): the manifest then carries the
                // corrected times, which the seal does not vouch for.
                if r.clockSynchronized, let listed = sources[name], listed.start != r.start || listed.end != r.end {
                    problems.add("the manifest gives \(name) \(listed.start) → \(listed.end), its sealed record says \(r.start) → \(r.end): the manifest was edited")
                }
            }
            return true
        }
        if let why = walked { problems.add("\(Bundle.chainFile): \(why)") }
        // Files no record names: reported; one sealed by this box past the chain's end proves
        // the chain's tail was cut.
        for file in unnamed.sorted().prefix(maxProblems) {
            let path = segmentsPath + "/" + file
            if let (_, seal) = SealBox.find(path: path), seal.sealed.isSealed(by: key), let r = seal.sealed.record, r.device == manifest.device,
               r.seq > lastSeq {
                problems.add("\(Bundle.segmentsDir)/\(file) is sealed by this box as record \(r.seq), but the chain given ends at record \(lastSeq): records \(lastSeq.adding(saturating: 1))–\(r.seq) were cut")
            } else {
                problems.add("\(Bundle.segmentsDir)/\(file) is named by no record of the chain: it is not part of the evidence (remove it, or find where it came from)")
            }
        }
        if unnamed.count > maxProblems { problems.add("… and \(unnamed.count - maxProblems) more files no record names") }
        for s in manifest.segments where s.verified {
            let name = (s.file as NSString).lastPathComponent
            if !namedInRange.contains(name) {
                problems.add("the manifest lists \(name), which no sealed record of the range names: the manifest was edited")
            }
        }
        for part in manifest.parts {
            let name = (part.file as NSString).lastPathComponent
            switch Result(catching: { try sha256(dir + "/" + name) }) {
            case .success(let sha) where sha != part.sha256:
                problems.add("\(name) is not the joined MP4 its manifest describes (sha256 differs)")
            case .failure:
                problems.add("\(name), the joined MP4 the manifest describes, is missing or not a plain file")
            default: break
            }
        }
        report.undeclared = EvidenceManifest.holes(from: manifest.from, to: manifest.to, covered: covered.sorted { $0.0 < $1.0 })
            .map { .init(from: $0.from, to: $0.to, reason: "no record covers it") }
        report.time.clockSynchronized = inRange > 0 && allSynchronized

        // The commune's countersignatures: each must verify, be of this device and name a record
        // the chain holds with the same hash; one past the chain's end means its tail was cut.
        let end = rangeEnd ?? lastSeq
        for c in countersigns {
            guard c.isValid(), c.device == manifest.device else {
                problems.add("a countersignature of record \(c.seq) does not verify (altered, or not for \(manifest.device))")
                continue
            }
            if let hash = hashBySeq[c.seq] {
                if hash != c.hash { problems.add("record \(c.seq) is not the one the commune countersigned on \(c.receivedAt): the chain was rewritten after") }
                else if c.seq >= end, report.time.countersignedRecord.map({ c.seq < $0 }) ?? true {
                    report.time.countersignedRecord = c.seq
                    report.time.countersignedAt = c.receivedAt
                    report.time.communeKey = DeviceKey.publicKey(base64: c.communeKey).map(DeviceKey.fingerprint(of:))
                }
            } else if c.seq > lastSeq {
                problems.add("the commune countersigned record \(c.seq) on \(c.receivedAt), but the chain given ends at record \(lastSeq): records \(lastSeq.adding(saturating: 1))–\(c.seq) were cut")
            }
        }
        report.problems = problems.all
        report.authentic = problems.isEmpty
        report.complete = report.authentic && report.undeclared.isEmpty && report.missingFootage.isEmpty
        return report
    }

    /// Why the seal box at the end of the segment file at `path` is not `sealed`'s, or nil: it
    /// must start where the record's media ends, end the file, and hold the same record and
    /// signature as the chain; gaps it carries must be sealed by the key.
    static func sealProblem(path: String, record: ChainRecord, sealed: SealedRecord, key: Curve25519.Signing.PublicKey) -> String? {
        guard let (offset, seal) = SealBox.find(path: path) else {
            return "its seal box is missing, or bytes follow it: every byte after the media must be the seal box"
        }
        guard offset == record.mediaBytes else { return "its seal box does not start where the sealed media ends" }
        guard seal.record == sealed.body, seal.signature == sealed.signature else {
            if let other = seal.sealed.record, other.seq != record.seq {
                return "it holds record \(other.seq)'s seal, not record \(record.seq)'s: the file was swapped or replayed"
            }
            return "its seal box holds another record or signature than the chain's: the seal box was edited"
        }
        for gap in seal.gaps ?? [] where !gap.isSealed(by: key) { return "a gap record in its seal box is not sealed by the box's key" }
        return nil
    }

    static func failed(_ why: String) -> BundleReport {
        BundleReport(authentic: false, complete: false, device: "", from: Timestamp(milliseconds: 0), to: Timestamp(milliseconds: 0),
                     verifiedSegments: 0, declaredGaps: [], missingFootage: [], undeclared: [], time: .init(clockSynchronized: false),
                     problems: [why])
    }

    enum FileRead { case data(Data), problem(String) }

    /// A plain file of at most `max` bytes, its size checked before a byte is read (issue 22: a
    /// 2 GB chain.jsonl took 2.1 GB of memory; a FIFO hung the verifier).
    static func readFile(_ path: String, max: Int) -> FileRead {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .problem(errno == ENOENT ? "missing" : "cannot be read (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .problem("not a plain file") }
        guard st.st_size <= max else { return .problem("\(st.st_size) bytes, over the bound of \(max)") }
        var data = Data(count: Int(st.st_size))
        var got = 0
        while got < data.count {
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .problem("cannot be read whole") }
            got += n
        }
        return .data(data)
    }

    /// Calls `body` with each line of `data` (numbered from 1; a CRLF ending counts as LF;
    /// empty lines are skipped).
    static func forEachLine(of data: Data, _ body: (Int, Data) -> Void) {
        var n = 0
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            n += 1
            let trimmed = line.last == 0x0D ? line.dropLast() : line
            if !trimmed.isEmpty { body(n, Data(trimmed)) }
        }
    }

    /// Streams the plain file at `path` (at most `Bundle.maxChainBytes`) line by line in 1 MiB
    /// reads: `body` gets each line, or nil for one over `maxLineBytes` (skipped to its end), and
    /// returns false to stop. Memory stays one read and one line whatever the file holds.
    /// Returns why the file could not be read, or nil.
    static func forEachLine(path: String, _ body: (Int, Data?) -> Bool) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return errno == ENOENT ? "missing from the proof folder" : "cannot be read (\(String(cString: strerror(errno))))" }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return "not a plain file" }
        guard st.st_size <= Bundle.maxChainBytes else { return "\(st.st_size) bytes, over the bound of \(Bundle.maxChainBytes)" }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var line = Data(), n = 0, tooLong = false
        func emit() -> Bool {
            n += 1
            defer { line.removeAll(keepingCapacity: true); tooLong = false }
            if line.last == 0x0D { line.removeLast() }
            if tooLong { return body(n, nil) }
            return line.isEmpty ? true : body(n, line)
        }
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 { return "cannot be read (\(String(cString: strerror(errno))))" }
            if got == 0 { break }
            var start = 0
            for i in 0..<got where buffer[i] == 0x0A {
                if !tooLong { line.append(contentsOf: buffer[start..<i]) }
                if line.count > maxLineBytes { tooLong = true }
                guard emit() else { return nil }
                start = i + 1
            }
            if !tooLong {
                line.append(contentsOf: buffer[start..<got])
                if line.count > maxLineBytes { tooLong = true; line.removeAll(keepingCapacity: true) }
            }
        }
        if !line.isEmpty || tooLong { _ = emit() }
        return nil
    }

    static func sha256(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ChainError.storage("cannot read \(path)") }
        var st = stat()
        let ok = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        close(fd)
        guard ok, case .hashed(let h) = PieceHasher.hash(path: path, count: Int64(st.st_size), maxPieces: 1) else {
            throw ChainError.storage("cannot read \(path)")
        }
        return h.finish().sha256
    }

    /// The report in words, as the CLIs print it.
    public static func render(_ r: BundleReport) -> String {
        var lines: [String] = []
        let range = "\(r.from) to \(r.to)"
        if r.device.isEmpty {
            // Nothing could be read: no device and no range to speak of (it printed 1970–1970).
            return (["NOT AUTHENTIC: the bundle cannot be read"] + r.problems.map { "  ✘ " + $0 }).joined(separator: "\n")
        }
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
