import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

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
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        if !isDir { return path }
        let found = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".manifest.json") }
        return found.count == 1 ? path + "/" + found[0] : nil
    }

    /// The folder a manifest's proof and parts are in: a bare name ("NAME.manifest.json", run
    /// from the bundle's own folder) is in ".", not "/" (issue 23: it looked at the root).
    static func folder(of manifestPath: String) -> String {
        let parent = manifestPath.parentPath
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

    /// Checks the bundle whose manifest is at `manifestPath`. `trusted` are the commune keys the
    /// caller trusts (`--commune-key`, a trust file): the device key must be bound by one of them
    /// for the bundle to be authentic; with none, the answer is at most "consistent".
    public static func verify(manifest manifestPath: String, trusting trusted: [Curve25519.Signing.PublicKey] = []) -> BundleReport {
        let dir = folder(of: manifestPath)
        var problems = Problems()
        let manifest: EvidenceManifest
        let manifestData: Data
        switch readFile(manifestPath, max: maxManifestBytes) {
        case .data(let data):
            manifestData = data
            guard let m = try? JSONDecoder().decode(EvidenceManifest.self, from: data) else { return failed("\(manifestPath) is not an export manifest") }
            guard m.segments.count <= maxManifestSegments, m.parts.count <= maxManifestParts else {
                return failed("\(manifestPath) lists \(m.segments.count) segments and \(m.parts.count) parts: at most \(maxManifestSegments) and \(maxManifestParts)")
            }
            manifest = m
        case .problem(let why): return failed("\(manifestPath): \(why)")
        }
        guard !manifest.device.isEmpty else { return failed("\(manifestPath) names no device") }
        var report = BundleReport(device: manifest.device, from: manifest.from, to: manifest.to)
        guard let proofName = manifest.proof, !proofName.isEmpty, !proofName.contains("/"), !proofName.hasPrefix("."), proofName.utf8.count <= 255 else {
            report.problems = ["the export carries no proof folder: it cannot be checked (made by a junction without sealing)"]
            return report
        }
        let proof = dir + "/" + proofName
        guard case .data(let keyData) = readFile(proof + "/" + Bundle.keyFile, max: 200),
              let key = DeviceKey.publicKey(base64: String(decoding: keyData, as: UTF8.self).trimmingSpaces) else {
            report.problems = ["\(Bundle.keyFile) is missing or not an Ed25519 public key"]
            return report
        }
        report.deviceKey = DeviceKey.fingerprint(of: key)
        let keyBase64 = key.rawRepresentation.base64EncodedString()
        let trustedKeys = Set(trusted.map { $0.rawRepresentation.base64EncodedString() })
        func fp(_ base64: String) -> String { DeviceKey.publicKey(base64: base64).map(DeviceKey.fingerprint(of:)) ?? "?" }

        // The proof folder holds the format's files and nothing else.
        let known: Set<String> = [Bundle.keyFile, Bundle.chainFile, Bundle.countersignFile, Bundle.bindingFile, ManifestSeal.file, Bundle.segmentsDir]
        for other in ((try? FileManager.default.contentsOfDirectory(atPath: proof)) ?? []).filter({ !known.contains($0) }).sorted().prefix(maxProblems) {
            problems.add("\(proofName)/\(other) is not a file of the bundle format: it is not part of the evidence")
        }

        // The trust anchor: the commune's binding of this device key (issue 23).
        var binding: KeyBinding?
        switch readFile(proof + "/" + Bundle.bindingFile, max: 4096) {
        case .data(let data):
            if let b = try? JSONDecoder().decode(KeyBinding.self, from: data), b.isValid {
                if b.device != manifest.device {
                    problems.add("\(Bundle.bindingFile) binds a key to \(b.device), not to \(manifest.device)")
                } else if b.deviceKey != keyBase64 {
                    problems.add("\(Bundle.bindingFile) binds device key \(fp(b.deviceKey)), not \(report.deviceKey ?? "?") which sealed this chain: the chain was re-sealed under another key")
                } else {
                    binding = b
                }
            } else {
                problems.add("\(Bundle.bindingFile) is not a key binding whose signature verifies: it was altered")
            }
        case .problem(let why) where why == "missing": break
        case .problem(let why): problems.add("\(Bundle.bindingFile): \(why)")
        }
        if let binding {
            let by = trustedKeys.contains(binding.communeKey) ? "a commune key you trust" : "commune key"
            report.reliedOn.append("device key \(report.deviceKey ?? "?") bound to \(manifest.device) on \(binding.boundAt) by \(by) \(fp(binding.communeKey))")
            if trustedKeys.contains(binding.communeKey) { report.anchored = true }
        }

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
        let sources = Dictionary(manifest.segments.map { ($0.file.lastPathPart, $0) }, uniquingKeysWith: { a, _ in a })
        var walker = ChainVerifier.Walker(key: key, device: manifest.device)
        var covered: [(Timestamp, Timestamp)] = [], namedInRange = Set<String>(), hashBySeq: [Int64: String] = [:]
        var lastSeq: Int64 = 0, rangeEnd: Int64?, inRange = 0, allSynchronized = true, records = 0
        var present: [(start: Timestamp, end: Timestamp)] = [], otherCameras = 0
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
            // The camera a person reads in the manifest is the records' (issue 23).
            if r.camera != manifest.camera {
                if otherCameras == 0 { problems.add("the manifest says camera \(manifest.camera), record \(r.seq) was made by camera \(r.camera): the manifest was edited") }
                otherCameras += 1
            }
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
                // Footage the bundle holds, for the manifest's gaps: whatever else is wrong with
                // the file is named on its own, not blamed on the manifest.
                if let listed = sources[name], listed.verified { present.append((listed.start, listed.end)) }
                else if sources[name] == nil { present.append((r.start, r.end)) }
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
                report.made(by: r.software, record: r.seq)
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
            let name = s.file.lastPathPart
            if !namedInRange.contains(name) {
                problems.add("the manifest lists \(name), which no sealed record of the range names: the manifest was edited")
            }
        }
        for part in manifest.parts {
            let name = part.file.lastPathPart
            switch Result(catching: { try sha256(dir + "/" + name) }) {
            case .success(let sha) where sha != part.sha256:
                problems.add("\(name) is not the joined MP4 its manifest describes (sha256 differs)")
            case .failure:
                problems.add("\(name), the joined MP4 the manifest describes, is missing or not a plain file")
            default: break
            }
        }
        // The gaps a person reads in the manifest are the range's stretches with no footage here,
        // each over the 1 s tolerance, no more and no fewer (issue 23).
        /// Whether stretches `by` leave more than the 1 s tolerance of `from`–`to` uncovered.
        func uncovered(_ from: Timestamp, _ to: Timestamp, by stretches: [(start: Timestamp, end: Timestamp)]) -> Bool {
            let inside = stretches.filter { $0.end > from && $0.start < to }.map { (start: max($0.start, from), end: min($0.end, to)) }
            return !EvidenceManifest.holes(from: from, to: to, covered: inside.sorted { $0.start < $1.start }).isEmpty
        }
        let withoutFootage = EvidenceManifest.holes(from: manifest.from, to: manifest.to, covered: present.sorted { $0.start < $1.start })
        let listedGaps = manifest.gaps.map { (start: $0.from, end: $0.to) }
        if let hidden = withoutFootage.first(where: { uncovered($0.from, $0.to, by: listedGaps) }) {
            problems.add("the bundle has no footage of \(hidden.from) → \(hidden.to), but the manifest's gaps do not say so: the manifest was edited")
        }
        let absent = withoutFootage.map { (start: $0.from, end: $0.to) }
        if let claimed = manifest.gaps.first(where: { max($0.from, manifest.from) < min($0.to, manifest.to) && uncovered(max($0.from, manifest.from), min($0.to, manifest.to), by: absent) }) {
            problems.add("the manifest lists a gap \(claimed.from) → \(claimed.to), but the bundle holds sealed footage of it: the manifest was edited")
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
            if let dk = c.deviceKey, dk != keyBase64 {
                problems.add("the commune countersigned record \(c.seq) from device key \(fp(dk)), not \(report.deviceKey ?? "?") which sealed this chain: the chain was re-sealed under another key")
                continue
            }
            if let binding, c.communeKey != binding.communeKey {
                problems.add("the countersignature of record \(c.seq) is by commune key \(fp(c.communeKey)), not the one that bound the device key (\(fp(binding.communeKey)))")
                continue
            }
            if let hash = hashBySeq[c.seq] {
                if hash != c.hash { problems.add("record \(c.seq) is not the one the commune countersigned on \(c.receivedAt): the chain was rewritten after") }
                else if c.deviceKey != nil, trustedKeys.contains(c.communeKey), !report.anchored {
                    // A version-2 countersignature under a trusted key names the device key too.
                    report.anchored = true
                    report.reliedOn.append("device key \(report.deviceKey ?? "?") named by a commune key you trust (\(fp(c.communeKey))) in its countersignature of record \(c.seq)")
                }
                if hash == c.hash, c.seq >= end, !trustedKeys.isEmpty, !trustedKeys.contains(c.communeKey) {
                    // Time evidence only from a commune the caller trusts.
                } else if hash == c.hash, c.seq >= end, report.time.countersignedRecord.map({ c.seq < $0 }) ?? true {
                    report.time.countersignedRecord = c.seq
                    report.time.countersignedAt = c.receivedAt
                    report.time.communeKey = DeviceKey.publicKey(base64: c.communeKey).map(DeviceKey.fingerprint(of:))
                }
            } else if c.seq > lastSeq {
                problems.add("the commune countersigned record \(c.seq) on \(c.receivedAt), but the chain given ends at record \(lastSeq): records \(lastSeq.adding(saturating: 1))–\(c.seq) were cut")
            }
        }
        // The manifest's signature: the box's device key, or the commune's key (issue 23).
        switch readFile(proof + "/" + ManifestSeal.file, max: 4096) {
        case .data(let data):
            guard let seal = try? JSONDecoder().decode(ManifestSeal.self, from: data), seal.isValid(manifest: manifestData) else {
                problems.add("the manifest's signature (\(ManifestSeal.file)) does not verify: the manifest was edited after it was signed")
                break
            }
            switch seal.signer {
            case .box:
                if seal.key != keyBase64 { problems.add("the manifest is signed by a key that is not the box's (\(fp(seal.key)))") }
                else { report.reliedOn.append("the manifest signed by the box's device key \(report.deviceKey ?? "?")") }
            case .commune:
                if !trustedKeys.isEmpty, !trustedKeys.contains(seal.key) {
                    problems.add("the manifest is signed by commune key \(fp(seal.key)), which you do not trust")
                } else if trustedKeys.isEmpty, let binding, seal.key != binding.communeKey {
                    problems.add("the manifest is signed by commune key \(fp(seal.key)), not the one that bound the device key (\(fp(binding.communeKey)))")
                } else {
                    report.reliedOn.append("the manifest signed by commune key \(fp(seal.key))")
                }
            }
        case .problem(let why):
            problems.add(why == "missing" ? "the manifest is not signed (\(proofName)/\(ManifestSeal.file) is missing): what it says cannot be relied on"
                                          : "\(ManifestSeal.file): \(why)")
        }

        if !trustedKeys.isEmpty, !report.anchored {
            problems.add("the device key \(report.deviceKey ?? "?") is bound by no commune key you trust (\(trustedKeys.sorted().map(fp).joined(separator: ", "))): "
                         + (binding.map { "the bundle's binding is by commune key \(fp($0.communeKey))" } ?? "the bundle carries no binding by one")
                         + "; it may be forged or from another commune")
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
        BundleReport(device: "", from: Timestamp(milliseconds: 0), to: Timestamp(milliseconds: 0), problems: [why])
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
            return (["CANNOT BE READ: this is not a bundle that can be checked"] + r.problems.map { "  ✘ " + $0 }).joined(separator: "\n")
        }
        if !r.authentic {
            lines.append("NOT AUTHENTIC: \(r.device) \(range)")
            lines += r.problems.map { "  ✘ " + $0 }
        } else if !r.anchored {
            // Consistent, but anyone can make a consistent bundle under a key of their own.
            lines.append("CONSISTENT, BUT NOT PROVEN AUTHENTIC: \(r.device), \(range), \(r.verifiedSegments) sealed segments")
            lines.append("  no commune key was given to check the box's key against (--commune-key BASE64|FILE, or the trust file)")
            lines.append("  compare these fingerprints with the ones the commune publishes before relying on this bundle:")
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
        for m in r.software {
            lines.append("  made by \(TerminalText.safe(m.software, limit: 64)): record\(m.firstRecord == m.lastRecord ? " \(m.firstRecord)" : "s \(m.firstRecord)–\(m.lastRecord)") (\(m.segments) segment\(m.segments == 1 ? "" : "s"))")
        }
        if let k = r.deviceKey { lines.append("  device key \(k)") }
        for k in r.reliedOn { lines.append("  relied on: \(k)") }
        lines.append("  box clock " + (r.time.clockSynchronized ? "synchronised for all of it" : "NOT synchronised for some of it: the box's times may be off"))
        if let at = r.time.countersignedAt, let seq = r.time.countersignedRecord {
            lines.append("  the commune (key \(r.time.communeKey ?? "?")) countersigned record \(seq) on \(at): the footage existed by then")
        } else {
            lines.append("  no countersignature covers the range: its time rests on the box's clock alone")
        }
        return lines.joined(separator: "\n")
    }
}
