import Commune
import Foundation
import HTTPTypes
import Hummingbird
import Media
import NIOCore
import NIOPosix
import Wire

/// Taking footage away as evidence: a request's clips, each checked against the sha256 the box
/// recorded, joined without re-encoding into one MP4 (the box's own export code, `ExportMuxer`;
/// a new part where the camera's format changed) with the same manifest `junction export` writes,
/// plus who took it and for which request. The page shows each file's sha256; every package made
/// and every file downloaded is audited. Packages stay under `<data>/evidence/`.
extension Desk {
    /// Clips in one package (a 31-day request of 10 s clips is more: ask for shorter ranges).
    static let maxEvidenceClips = 20_000

    func registerEvidence<Context: RemoteAddressRequestContext>(on router: Router<Context>) {
        router.post("requests/:id/evidence") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await self.withSession(request) { session in
                try await self.makeEvidence(request, session, id: id, address: Self.address(context))
            }
        }
        router.get("evidence/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            return try await self.withSession(request) { session in try await self.evidencePage(request, session, name: name) }
        }
        router.get("evidence/:name/:file") { request, context in
            let name = context.parameters.get("name") ?? "", file = context.parameters.get("file") ?? ""
            return try await self.withSession(request) { session in
                try await self.downloadEvidence(request, session, name: name, file: file, address: Self.address(context), context: context)
            }
        }
    }

    struct EvidenceFailure: Error, CustomStringConvertible { var description: String }

    func makeEvidence(_ request: Request, _ session: Catalog.Session, id: String, address: String) async throws -> Response {
        let language = Self.language(request)
        guard let form = try await Self.form(TokenForm.self, request), Self.same(form.csrf, session.csrf) else {
            return Self.html(HTML.page(title: "403", language: language, session: session,
                                       body: HTML.notice(Strings.text(.formExpired, language))), status: .forbidden)
        }
        guard let r = try await footageRequest(id) else { return Self.notFound(request, session) }
        let clips = try await clips(of: r)
        guard !clips.isEmpty, clips.count <= Self.maxEvidenceClips else {
            let why = clips.isEmpty ? Strings.text(.noClipsYet, language) : "\(clips.count) clips: ask for a shorter range"
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session, body: HTML.notice(why)),
                             status: .badRequest)
        }
        let name = "\(r.id)-\(Timestamp.now().compact)"
        let folder = configuration.evidenceRoot + "/" + name
        let stem = "\(r.device)-\(clips[0].camera)-\(r.from.compact)"
        let officer = session.operator
        let manifest: EvidenceManifest
        do {
            manifest = try await Self.blockingThrowing {
                try Self.writeEvidence(request: r, clips: clips, folder: folder, stem: stem, officer: officer)
            }
        } catch {
            logger.error("desk: evidence could not be made", metadata: ["request": "\(r.id)", "error": "\(error)"])
            return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session,
                                       body: HTML.notice("\(Strings.text(.evidenceFailed, language)) (\(error))")), status: .internalServerError)
        }
        let hashes = manifest.parts.map { "\($0.file) sha256 \($0.sha256)" }.joined(separator: "; ")
        try await catalog.audit(operator: officer, address: address, action: "evidence made", detail: "\(r.id) \(name): \(hashes)")
        return Self.redirect("/evidence/" + name)
    }

    /// Checks every clip, writes the parts and the manifest into `folder` (created; removed again
    /// when anything fails). Blocking: runs on the thread pool.
    static func writeEvidence(request r: Catalog.Request, clips: [Catalog.Clip], folder: String, stem: String,
                              officer: String) throws -> EvidenceManifest {
        try TusEndpoint.makeDirectories(folder)
        var done = false
        defer { if !done { try? FileManager.default.removeItem(atPath: folder) } }
        var verified: [Catalog.Clip] = [], damaged: [Catalog.Clip] = []
        for c in clips {
            if (try? TusEndpoint.sha256(c.path)) == c.sha256 { verified.append(c) } else { damaged.append(c) }
        }
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
        let manifest = EvidenceManifest(
            device: r.device, camera: verified[0].camera, from: r.from, to: r.to, exportedAt: .now(), junctionVersion: "commune",
            clockSynchronized: true, parts: parts,
            segments: verified.map { .init(file: ($0.path as NSString).lastPathComponent, start: $0.start, end: $0.end, bytes: $0.bytes,
                                           sha256: $0.sha256, verified: true, part: partOf[$0.id]) }
                + damaged.map { .init(file: ($0.path as NSString).lastPathComponent, start: $0.start, end: $0.end, bytes: $0.bytes,
                                      sha256: $0.sha256, verified: false, part: nil) },
            gaps: EvidenceManifest.holes(from: r.from, to: r.to, covered: verified.map { ($0.start, $0.end) }),
            request: r.id, reason: r.reason, exportedBy: officer)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let manifestPath = "\(folder)/\(stem).manifest.json"
        guard FileManager.default.createFile(atPath: manifestPath, contents: try encoder.encode(manifest)) else {
            throw EvidenceFailure(description: "cannot write \(manifestPath)")
        }
        try TusEndpoint.fsyncDirectory(folder)
        done = true
        return manifest
    }

    /// The files of one package, as (name, bytes, sha256).
    func evidenceFiles(_ name: String) throws -> [(name: String, bytes: Int64, sha256: String)]? {
        guard PlainName.isValid(name) else { return nil }
        let folder = configuration.evidenceRoot + "/" + name
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return nil }
        return try entries.filter { !$0.hasSuffix(".partial") && PlainName.isValid($0) }.sorted().map { file in
            var st = stat()
            _ = stat(folder + "/" + file, &st)
            return (file, Int64(st.st_size), try TusEndpoint.sha256(folder + "/" + file))
        }
    }

    func evidencePage(_ request: Request, _ session: Catalog.Session, name: String) async throws -> Response {
        let language = Self.language(request)
        let t = { (k: Key) in HTML.escape(Strings.text(k, language)) }
        let local = LocalForm(timeZone: configuration.timeZone, language: language)
        guard let files = try await Self.blockingThrowing({ try self.evidenceFiles(name) }) else { return Self.notFound(request, session) }
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
            """
        return Self.html(HTML.page(title: Strings.text(.evidence, language), language: language, session: session, body: body), status: .ok)
    }

    func downloadEvidence<Context: RequestContext>(_ request: Request, _ session: Catalog.Session, name: String, file: String, address: String,
                                                   context: Context) async throws -> Response {
        guard PlainName.isValid(name), PlainName.isValid(file), !file.hasSuffix(".partial") else { return Self.notFound(request, session) }
        let path = configuration.evidenceRoot + "/" + name + "/" + file
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return Self.notFound(request, session) }
        let sha = try await Self.blockingThrowing { try TusEndpoint.sha256(path) }
        try await catalog.audit(operator: session.operator, address: address, action: "download", detail: "\(name)/\(file) sha256 \(sha)")
        var headers = Self.securityHeaders(contentType: file.hasSuffix(".json") ? "application/json" : "video/mp4")
        headers[.contentDisposition] = "attachment; filename=\"\(file)\""
        headers[.contentLength] = String(st.st_size)
        headers[HTTPField.Name("X-Content-SHA256")!] = sha
        return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: path, context: context))
    }

    static func blockingThrowing<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
