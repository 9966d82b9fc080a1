import Commune
import Foundation
import HTTPTypes
import Hummingbird
import Media
import NIOCore
import NIOPosix
import Wire
import Evidence
import ZIPFoundation

/// Taking footage away as evidence: a request's clips, each checked against the sha256 the box
/// recorded, joined without re-encoding into one MP4 (the box's own export code, `ExportMuxer`;
/// a new part where the camera's format changed) with the same manifest `junction export` writes,
/// plus who took it and for which request. The page shows each file's sha256; every package made
/// and every file downloaded is audited. Packages stay under `<data>/evidence/`.
extension Desk {
    /// Clips in one package (a 31-day request of 10 s clips is more: ask for shorter ranges).
    static let maxEvidenceClips = 20_000
    /// The longest ending a package's file takes after its stem.
    static let longestEnding = ".manifest.json"

    func registerEvidence<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.post("requests/:id/evidence") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await self.withSession(request) { session in
                try await self.makeRequestEvidence(request, session, id: id, address: self.address(request, context))
            }
        }
        router.get("evidence/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            return try await self.withSession(request) { session in try await self.evidencePage(request, session, name: name) }
        }
        router.get("evidence/:name/:file") { request, context in
            let name = context.parameters.get("name") ?? "", file = context.parameters.get("file") ?? ""
            return try await self.withSession(request) { session in
                try await self.downloadEvidence(request, session, name: name, file: file, address: self.address(request, context), context: context)
            }
        }
    }

    struct EvidenceFailure: Error, CustomStringConvertible { var description: String }

    func makeRequestEvidence(_ request: Request, _ session: Catalog.Session, id: String, address: String) async throws -> Response {
        guard let form = try await Self.form(TokenForm.self, request), Self.same(form.csrf, session.csrf) else {
            return Self.forbidden(request, session)
        }
        guard let r = try await footageRequest(id) else { return Self.notFound(request, session) }
        return try await makeEvidence(request, session, range: FootageRange(r), address: address)
    }

    /// Makes the package of a range (the form was checked by the caller) and shows it.
    func makeEvidence(_ request: Request, _ session: Catalog.Session, range r: FootageRange, address: String) async throws -> Response {
        let language = Self.language(request)
        let clips = try await clips(in: r)
        guard !clips.isEmpty, clips.count <= Self.maxEvidenceClips else {
            let why = clips.isEmpty ? Strings.text(.noClipsYet, language) : "\(clips.count) clips: ask for a shorter range"
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session, body: HTML.notice(why)),
                             status: .badRequest)
        }
        let (name, stem) = Self.packageNames(r, camera: clips[0].camera, at: .now())
        let folder = configuration.evidenceRoot + "/" + name
        let officer = session.operator
        // The proof (issue 13): the device's key, the commune's copy of its chain records for the
        // range, and the countersignatures among them.
        var proof: Proof?
        let records = try await catalog.chainRecords(device: r.device, from: r.from, to: r.to)
        // The key that sealed these records: the device's now, or one it had before a re-key.
        var sealedBy: String?
        if let first = records.first {
            sealedBy = try await catalog.boundKeys(device: r.device).reversed().first { DeviceKey.publicKey(base64: $0).map(first.isSealed(by:)) ?? false }
        }
        if let key = sealedBy {
            let seqs = records.compactMap { $0.record?.seq }
            var countersigns: [Heartbeat.Countersign] = []
            var binding: KeyBinding?
            if let communeKey = configuration.communeKey, let low = seqs.min(), let high = seqs.max() {
                countersigns = try await catalog.countersigns(device: r.device, communeKey: communeKey.publicKeyBase64)
                    .filter { $0.seq >= low && $0.seq <= high && ($0.deviceKey == nil || $0.deviceKey == key) }
                binding = try await catalog.keyBinding(device: r.device, deviceKey: key, communeKey: communeKey.publicKeyBase64) { at in
                    try KeyBinding.make(device: r.device, deviceKey: key, boundAt: at, key: communeKey)
                }
            }
            proof = Proof(publicKey: key, records: records, countersigns: countersigns, binding: binding)
        }
        let manifest: EvidenceManifest
        do {
            manifest = try await Self.blocking { [proof, communeKey = configuration.communeKey] in
                try Self.writeEvidence(range: r, clips: clips, folder: folder, stem: stem, officer: officer, proof: proof, signer: communeKey)
            }
        } catch {
            logger.error("desk: evidence could not be made", metadata: ["range": "\(r.label)", "error": "\(error)"])
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session,
                                       body: HTML.notice("\(Strings.text(.evidenceFailed, language)) (\(error))")), status: .internalServerError)
        }
        let hashes = manifest.parts.map { "\($0.file) sha256 \($0.sha256)" }.joined(separator: "; ")
        try await catalog.audit(operator: officer, address: address, action: "evidence made", detail: "\(r.label) \(r.device) \(r.from)–\(r.to) \(name): \(hashes)")
        return Self.redirect("/evidence/" + name)
    }

    /// A package's folder name and its files' stem. Both fit a plain name whatever the device's
    /// and camera's (64 characters each): the folder is the page's address, the stem names every
    /// file in it, with room for the longest ending (`longestEnding`).
    static func packageNames(_ r: FootageRange, camera: String, at now: Timestamp) -> (name: String, stem: String) {
        (PlainName.fitted("\(PlainName.fitted(r.label, max: 43))-\(now.compact)"),
         PlainName.fitted("\(r.device)-\(camera)-\(r.from.compact)", max: PlainName.maxLength - longestEnding.count))
    }

    /// The checksum list in each package, in `sha256sum`'s form, so that `sha256sum -c SHA256SUMS`
    /// checks a copy anywhere; the page and the downloads read the sums from it.
    static let sumsFile = "SHA256SUMS"

    /// What proves a package's footage: the device's key, its sealed records, the countersignatures.
    struct Proof: Sendable {
        var publicKey: String
        var records: [SealedRecord]
        var countersigns: [Heartbeat.Countersign]
        var binding: KeyBinding?
    }

    /// Checks every clip, writes the parts, the manifest, the proof folder, all of it once more as
    /// one `.bundle.zip` (what an officer on a Windows PC downloads and hands over), and
    /// `SHA256SUMS` into `folder` (created; removed again when anything fails). Blocking: runs on
    /// the thread pool.
    static func writeEvidence(range r: FootageRange, clips: [Catalog.Clip], folder: String, stem: String,
                              officer: String, proof: Proof? = nil, signer: DeviceKey? = nil) throws -> EvidenceManifest {
        try TusEndpoint.makeDirectories(folder)
        var done = false
        defer { if !done { try? FileManager.default.removeItem(atPath: folder) } }
        var verified: [Catalog.Clip] = [], damaged: [Catalog.Clip] = [], cardDamaged: [Catalog.Clip] = []
        for c in clips {
            let intact = (try? TusEndpoint.sha256(c.path)) == c.sha256
            // A clip the box's card damaged (issue 22) is not joined (its damaged fragments may
            // not even parse), but its file goes into the proof: its intact fragments verify, and
            // the verifier names the seconds lost.
            if intact && c.proof == ClipProof.Status.damaged.rawValue { cardDamaged.append(c) } else if intact { verified.append(c) } else { damaged.append(c) }
        }
        damaged += cardDamaged
        guard !verified.isEmpty else { throw EvidenceFailure(description: "every clip of the range is damaged on the server") }
        let writer = PartedExport { n in n.map { "\(folder)/\(stem)-part\($0).mp4" } ?? "\(folder)/\(stem).mp4" }
        var partOf: [Int64: Int] = [:]
        do {
            for c in verified {
                partOf[c.id] = try writer.add(c.path, bytes: c.bytes, startMicroseconds: c.start.milliseconds * 1000,
                                              endMicroseconds: c.end.milliseconds * 1000)
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        let parts = try writer.parts.map {
            EvidenceManifest.Part(file: ($0.path as NSString).lastPathComponent, bytes: $0.bytes, sha256: try TusEndpoint.sha256($0.path),
                                  from: Timestamp(milliseconds: $0.startMicroseconds / 1000),
                                  to: Timestamp(milliseconds: $0.endMicroseconds / 1000), segments: $0.segments)
        }
        var manifest = EvidenceManifest(
            device: r.device, camera: verified[0].camera, from: r.from, to: r.to, exportedAt: .now(), junctionVersion: "commune",
            clockSynchronized: true, parts: parts,
            segments: verified.map { .init(file: ($0.path as NSString).lastPathComponent, start: $0.start, end: $0.end, bytes: $0.bytes,
                                           sha256: $0.sha256, verified: true, part: partOf[$0.id]) }
                + damaged.map { .init(file: ($0.path as NSString).lastPathComponent, start: $0.start, end: $0.end, bytes: $0.bytes,
                                      sha256: $0.sha256, verified: false, part: nil) },
            gaps: EvidenceManifest.holes(from: r.from, to: r.to, covered: verified.map { ($0.start, $0.end) }),
            request: r.request, reason: r.reason, exportedBy: officer)
        if let proof {
            // Each sealed clip under the name its record gives it.
            let fileBySeq = Dictionary(proof.records.compactMap { s in s.record.map { ($0.seq, $0.file) } }, uniquingKeysWith: { a, _ in a })
            let segments = (verified + cardDamaged).compactMap { c -> (name: String, path: String)? in
                guard let seq = c.chainSeq, let name = fileBySeq[seq] ?? nil, PlainName.isValid(name) else { return nil }
                return (name, c.path)
            }
            try Bundle.writeProof(into: "\(folder)/\(stem).proof", publicKey: proof.publicKey, chain: proof.records,
                                  countersigns: proof.countersigns, binding: proof.binding, segments: segments)
            manifest.proof = "\(stem).proof"
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let manifestPath = "\(folder)/\(stem).manifest.json"
        guard FileManager.default.createFile(atPath: manifestPath, contents: try encoder.encode(manifest)) else {
            throw EvidenceFailure(description: "cannot write \(manifestPath)")
        }
        if let p = manifest.proof, let signer { try Bundle.signManifest(at: manifestPath, proof: "\(folder)/\(p)", signer: .commune, key: signer) }
        var sums = parts.map { "\($0.sha256)  \($0.file)\n" }.joined()
            + "\(try TusEndpoint.sha256(manifestPath))  \((manifestPath as NSString).lastPathComponent)\n"
        // One file to download: the parts, the manifest and the proof folder, stored (video does
        // not compress), paths relative to the package, as `commune verify` reads them unzipped.
        let zipName = "\(stem).bundle.zip"
        let archive = try Archive(url: URL(fileURLWithPath: "\(folder)/\(zipName)"), accessMode: .create)
        let base = URL(fileURLWithPath: folder)
        var entries = parts.map(\.file) + [(manifestPath as NSString).lastPathComponent]
        if let p = manifest.proof {
            entries += (FileManager.default.enumerator(atPath: "\(folder)/\(p)")?.allObjects as? [String] ?? [])
                .filter { !Self.isDirectory("\(folder)/\(p)/\($0)") }.sorted().map { "\(p)/\($0)" }
        }
        for entry in entries { try archive.addEntry(with: entry, relativeTo: base, compressionMethod: .none) }
        sums += "\(try TusEndpoint.sha256("\(folder)/\(zipName)"))  \(zipName)\n"
        guard FileManager.default.createFile(atPath: "\(folder)/\(sumsFile)", contents: Data(sums.utf8)) else {
            throw EvidenceFailure(description: "cannot write \(folder)/\(sumsFile)")
        }
        try TusEndpoint.fsyncDirectory(folder)
        done = true
        return manifest
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The files of one package, as (name, bytes, sha256 written when it was made), read from
    /// its `SHA256SUMS`; nil when there is no such package. Nothing is re-hashed here: a page
    /// view stays cheap however big the package is.
    func evidenceFiles(_ name: String) throws -> [(name: String, bytes: Int64, sha256: String)]? {
        guard PlainName.isValid(name) else { return nil }
        let folder = configuration.evidenceRoot + "/" + name
        guard let sums = Self.readSums(folder) else { return nil }
        return sums.map { file, sha in
            var st = stat()
            return (file, stat(folder + "/" + file, &st) == 0 ? Int64(st.st_size) : 0, sha)
        }
    }

    /// `SHA256SUMS` of a package as (file, sha256) in its order, or nil when it is missing or
    /// not in that form (at most 1 MiB; plain names only).
    static func readSums(_ folder: String) -> [(String, String)]? {
        guard let data = FileManager.default.contents(atPath: folder + "/" + sumsFile), data.count <= 1 << 20,
              let text = String(data: data, encoding: .utf8) else { return nil }
        var sums: [(String, String)] = []
        for line in text.split(separator: "\n") {
            let sha = String(line.prefix(64)), rest = line.dropFirst(64)
            guard sha.count == 64, sha.allSatisfy(\.isHexDigit), rest.hasPrefix("  "), PlainName.isValid(String(rest.dropFirst(2))) else { return nil }
            sums.append((String(rest.dropFirst(2)), sha))
        }
        return sums
    }

    func evidencePage(_ request: Request, _ session: Catalog.Session, name: String) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        guard var files = try await Self.blocking({ try self.evidenceFiles(name) }) else { return Self.notFound(request, session) }
        let sumsPath = configuration.evidenceRoot + "/" + name + "/" + Self.sumsFile
        files.append((Self.sumsFile, Int64(FileManager.default.contents(atPath: sumsPath)?.count ?? 0),
                      try await Self.blocking { try TusEndpoint.sha256(sumsPath) }))
        let rows = files.map { f in
            """
            <tr><td><a href="/evidence/\(HTML.escape(name))/\(HTML.escape(f.name))" download>\(HTML.escape(f.name))</a></td>
            <td>\(local.bytes(f.bytes))</td><td><code class="sha256">\(f.sha256)</code></td></tr>
            """
        }.joined(separator: "\n")
        let body = """
            <h1>\(t(.evidence))</h1><p>\(t(.evidenceIntro))</p>
            <div class="scroll"><table class="list evidence"><thead><tr><th>\(t(.file))</th><th>\(t(.size))</th><th>SHA-256</th></tr></thead><tbody>
            \(rows)
            </tbody></table></div>
            \(communeKeyNote(t))
            """
        return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session, body: body), status: .ok)
    }

    /// The commune's published key and how to check a package with it (issue 23): all a
    /// stranger needs beside the bundle.
    func communeKeyNote(_ t: (Key) -> String) -> String {
        guard let key = configuration.communeKey else { return "" }
        return """
            <p class="commune-key">\(t(.communeKeyNote))<br><code class="verify">commune verify --commune-key \(HTML.escape(key.publicKeyBase64)) \(t(.unzippedFolder))</code><br>
            \(t(.communeFingerprint)) <code class="fingerprint">\(key.fingerprint)</code></p>
            """
    }

    func downloadEvidence<Context: RequestContext>(_ request: Request, _ session: Catalog.Session, name: String, file: String, address: String,
                                                   context: Context) async throws -> Response {
        guard PlainName.isValid(name), PlainName.isValid(file), !file.hasSuffix(".partial") else { return Self.notFound(request, session) }
        let path = configuration.evidenceRoot + "/" + name + "/" + file
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return Self.notFound(request, session) }
        // What is served is checked against the sum written when the package was made: a file
        // changed on the server since is refused, and the refusal is audited.
        let sha = try await Self.blocking { try TusEndpoint.sha256(path) }
        let written = file == Self.sumsFile ? sha : Self.readSums(configuration.evidenceRoot + "/" + name)?.first { $0.0 == file }?.1
        guard sha == written else {
            try await catalog.audit(operator: session.operator, address: address, action: "download refused",
                                    detail: "\(name)/\(file) sha256 \(sha), written \(written ?? "none")")
            logger.error("desk: evidence file changed since it was made", metadata: ["file": "\(name)/\(file)", "sha256": "\(sha)"])
            let language = Self.language(request)
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session,
                                       body: HTML.notice(Strings.text(.evidenceChanged, language))), status: .conflict)
        }
        try await catalog.audit(operator: session.operator, address: address, action: "download", detail: "\(name)/\(file) sha256 \(sha)")
        let type = file.hasSuffix(".json") ? "application/json" : file.hasSuffix(".zip") ? "application/zip"
            : file.hasSuffix(".mp4") ? "video/mp4" : "text/plain; charset=utf-8"
        var headers = Self.securityHeaders(contentType: type)
        headers[.contentDisposition] = "attachment; filename=\"\(file)\""
        headers[.contentLength] = String(st.st_size)
        headers[HTTPField.Name("X-Content-SHA256")!] = sha
        return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: path, context: context))
    }
}
