import Evidence
import SystemCrypto
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The commune's tus 1.0.0 endpoint at `/files/`: creation, creation-with-upload, checksum
/// (sha1, sha256), termination and expiration. Every request needs a device token; a device
/// only sees its own uploads. A finished upload is verified against the whole-file sha256 in
/// its metadata before it becomes a clip; a mismatch discards it (410: the box uploads again).
public struct TusEndpoint: Sendable {
    public struct Configuration: Sendable {
        public var data: String
        public var maxUploadBytes: Int64 = 2 << 30
        public var maxChunkBytes = 16 << 20
        public var expirySeconds: Double = 24 * 3600
        /// All of one device's clips and uploads in progress together; nil: no limit.
        public var deviceQuotaBytes: Int64?
        public init(data: String) { self.data = data }
    }

    let configuration: Configuration
    let catalog: Catalog
    let logger: Logger
    let locks = UploadLocks()

    public init(configuration: Configuration, catalog: Catalog, logger: Logger) {
        self.configuration = configuration
        self.catalog = catalog
        self.logger = logger
    }

    static func name(_ s: String) -> HTTPField.Name { HTTPField.Name(s)! }
    static let checksumMismatch = HTTPResponse.Status(code: 460, reasonPhrase: "Checksum Mismatch")

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.on("files", method: .options) { _, _ in self.options() }
        router.post("files") { request, _ in try await self.create(request) }
        router.head("files/:id") { request, context in try await self.head(request, id: context.parameters.get("id") ?? "") }
        router.patch("files/:id") { request, context in try await self.patch(request, id: context.parameters.get("id") ?? "") }
        router.delete("files/:id") { request, context in try await self.terminate(request, id: context.parameters.get("id") ?? "") }
    }

    func tusHeaders(_ extra: [(String, String)] = []) -> HTTPFields {
        var h = HTTPFields()
        h[Self.name(Tus.Header.resumable)] = Tus.version
        h[.cacheControl] = "no-store"
        for (k, v) in extra { h[Self.name(k)] = v }
        return h
    }

    func reply(_ status: HTTPResponse.Status, _ text: String? = nil, headers: [(String, String)] = []) -> Response {
        var h = tusHeaders(headers)
        guard let text else { return Response(status: status, headers: h) }
        h[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    func options() -> Response {
        reply(.noContent, headers: [
            (Tus.Header.version, Tus.version),
            (Tus.Header.extension, "creation,creation-with-upload,checksum,termination,expiration"),
            (Tus.Header.checksumAlgorithm, "sha256,sha1"),
            (Tus.Header.maxSize, String(configuration.maxUploadBytes)),
        ])
    }

    /// The device behind the bearer token, or nil.
    func device(_ request: Request) async throws -> String? {
        guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") else { return nil }
        return try await catalog.device(token: String(auth.dropFirst(7)))
    }


    func create(_ request: Request) async throws -> Response {
        guard let device = try await device(request) else { return reply(.unauthorized, "a device token is needed (Authorization: Bearer …)") }
        guard let length = request.headers[Self.name(Tus.Header.uploadLength)].flatMap({ Int64($0) }), length >= 0 else {
            return reply(.badRequest, "Upload-Length is missing or not a number")
        }
        guard length <= configuration.maxUploadBytes else { return reply(.contentTooLarge, "uploads are limited to \(configuration.maxUploadBytes) bytes") }
        let metadata: UploadMetadata
        do {
            metadata = try UploadMetadata(decoding: request.headers[Self.name(Tus.Header.uploadMetadata)] ?? "")
        } catch {
            return reply(.badRequest, "\(error)")
        }
        if let problem = Self.validate(metadata, device: device) { return reply(problem.0, problem.1) }
        let previewOf = metadata["kind"] == "preview" ? metadata["request"] : nil
        if let previewOf {
            guard length <= PreviewSheet.Limits.maxBytes else {
                return reply(.contentTooLarge, "a preview is limited to \(PreviewSheet.Limits.maxBytes) bytes")
            }
            guard try await catalog.requests(device: device, id: previewOf).first != nil else {
                return reply(.notFound, "device \(device) has no request \(previewOf.prefix(64)): a preview belongs to a request of its own box")
            }
        }
        if let quota = configuration.deviceQuotaBytes {
            let used = try await catalog.bytesHeld(device: device)
            guard used + length <= quota else {
                logger.warning("tus: device over its quota", metadata: ["device": "\(device)", "used": "\(used)", "quota": "\(quota)"])
                return reply(HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), "device \(device) holds \(used) bytes of its \(quota)-byte quota: the operator must free space or raise limits.device_quota_bytes")
            }
        }
        var rng = SystemRandomNumberGenerator()
        let id = hex((0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let expires = Timestamp.now() + configuration.expirySeconds
        let path = partPath(id)
        try await blocking { try Self.createFile(path) }
        try await catalog.createUpload(.init(id: id, device: device, length: length, offset: 0, metadata: metadata.encoded, expires: expires))
        if let previewOf { try await catalog.previewUploadStarted(uploadID: id, request: previewOf, partPath: path) }
        logger.info("tus: upload created", metadata: ["id": "\(id)", "device": "\(device)", "file": "\(metadata["filename"] ?? "")"])
        var headers = [(Tus.Header.location, "/files/\(id)"), (Tus.Header.uploadExpires, HTTPDate.format(expires))]
        // creation-with-upload: a first chunk in the POST body.
        if request.headers[.contentType] == Tus.Header.offsetOctetStream {
            let response = try await append(request, id: id, device: device)
            if response.status != .noContent {
                // The box never learns this upload's Location: drop it now, or it holds quota
                // until it expires.
                _ = try? await blocking { unlink(path) }
                try await catalog.deleteUpload(id: id)
                return response
            }
            headers.append((Tus.Header.uploadOffset, response.headers[Self.name(Tus.Header.uploadOffset)] ?? "0"))
        }
        return reply(.created, headers: headers)
    }

    /// Returns a status and message when metadata is not acceptable.
    static func validate(_ m: UploadMetadata, device: String) -> (HTTPResponse.Status, String)? {
        for key in ["device", "camera", "start", "end", "sha256", "filename"] where m[key] == nil {
            return (.badRequest, "Upload-Metadata needs '\(key)'")
        }
        guard m["device"] == device else { return (.forbidden, "this token belongs to device \(device), not \(m["device"]!)") }
        guard PlainName.isValid(m["camera"]!), PlainName.isValid(m["filename"]!) else {
            return (.badRequest, "camera and filename must be plain names (letters, digits, - _ .): no paths")
        }
        guard let start = Timestamp(rfc3339: m["start"]!), let end = Timestamp(rfc3339: m["end"]!), end >= start else {
            return (.badRequest, "start and end must be RFC 3339 times, end not before start")
        }
        let sha = m["sha256"]!
        guard sha.count == 64, sha.allSatisfy(\.isHexDigit) else { return (.badRequest, "sha256 must be 64 hex digits") }
        // A box sends a segment its card damaged as it is, saying so (issue 22).
        guard m["damaged"] == nil || m["damaged"] == "card" else { return (.badRequest, "damaged, when given, must be card") }
        switch m["kind"] {
        case nil, "clip":
            break
        case "preview":
            guard let r = m["request"], PlainName.isValid(r) else { return (.badRequest, "a preview names its request (a plain name)") }
        default:
            return (.badRequest, "kind must be clip or preview")
        }
        return nil
    }

    func owned(_ request: Request, id: String) async throws -> (String, Catalog.Upload)? {
        guard let device = try await device(request) else { return nil }
        guard let upload = try await catalog.upload(id: id), upload.device == device else { return nil }
        return (device, upload)
    }

    func head(_ request: Request, id: String) async throws -> Response {
        guard let device = try await device(request) else { return reply(.unauthorized, "a device token is needed") }
        guard let upload = try await catalog.upload(id: id), upload.device == device else {
            // Finished and filed: complete, so a box that lost the final 204 does not send it again.
            if let clip = try await catalog.clip(upload: id, device: device) {
                return reply(.ok, headers: [(Tus.Header.uploadOffset, String(clip.bytes)), (Tus.Header.uploadLength, String(clip.bytes))])
            }
            return reply(.notFound)
        }
        if upload.expires < Timestamp.now() { return try await expire(upload) }
        return reply(.ok, headers: [(Tus.Header.uploadOffset, String(upload.offset)), (Tus.Header.uploadLength, String(upload.length)),
                                    (Tus.Header.uploadExpires, HTTPDate.format(upload.expires))])
    }

    func patch(_ request: Request, id: String) async throws -> Response {
        guard let device = try await device(request) else { return reply(.unauthorized, "a device token is needed") }
        guard request.headers[.contentType] == Tus.Header.offsetOctetStream else {
            return reply(.unsupportedMediaType, "PATCH bodies must be \(Tus.Header.offsetOctetStream)")
        }
        return try await append(request, id: id, device: device)
    }

    /// Appends a body to an upload as it streams in. A body cut off mid-way (the link dropped)
    /// keeps what arrived: the box resumes from there (HEAD) instead of sending the chunk again.
    /// That holds with `Upload-Checksum` too: TCP/TLS carried those bytes intact, and the
    /// whole-file sha256 checked on completion is the final word. A body that arrives whole but
    /// does not match its checksum is dropped (460). One writer per upload: a new PATCH stops
    /// one still hanging on a dead connection, then checks the offset again (409 if it moved).
    func append(_ request: Request, id: String, device: String) async throws -> Response {
        guard try await catalog.upload(id: id)?.device == device else {
            if let clip = try await catalog.clip(upload: id, device: device) {
                return reply(.conflict, "the upload is complete at offset \(clip.bytes)", headers: [(Tus.Header.uploadOffset, String(clip.bytes))])
            }
            return reply(.notFound)
        }
        let lease = await locks.acquire(id)
        defer { Task { await locks.release(id, lease) } }
        guard let upload = try await catalog.upload(id: id), upload.device == device else { return reply(.notFound) }
        if upload.expires < Timestamp.now() { return try await expire(upload) }
        if request.method == .patch {
            guard let offset = request.headers[Self.name(Tus.Header.uploadOffset)].flatMap({ Int64($0) }) else {
                return reply(.badRequest, "Upload-Offset is missing")
            }
            guard offset == upload.offset else {
                return reply(.conflict, "offset \(offset) does not match the server's \(upload.offset)")
            }
        }
        var checksum: (algorithm: Substring, expected: Substring)?
        if let header = request.headers[Self.name(Tus.Header.uploadChecksum)] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { return reply(.badRequest, "Upload-Checksum is 'algorithm base64'") }
            guard parts[0] == "sha256" || parts[0] == "sha1" else {
                return reply(.badRequest, "checksum algorithm \(parts[0]) is not supported (sha256, sha1)")
            }
            checksum = (parts[0], parts[1])
        }
        let room = min(Int64(configuration.maxChunkBytes), upload.length - upload.offset)
        if let declared = request.headers[.contentLength].flatMap({ Int64($0) }), declared > room {
            return reply(.contentTooLarge, "the chunk goes past Upload-Length or the \(configuration.maxChunkBytes)-byte chunk limit")
        }
        let path = partPath(id)
        let writer = try await blocking { try ChunkWriter(path: path, offset: upload.offset) }
        // Read in a task of our own so a newer PATCH can stop this one even while it waits on a dead link.
        let body = request.body
        let limit = room
        let reading = Task { () throws -> (Int64, String?, String?) in
            var sha256 = SHA256(), sha1 = Insecure.SHA1(), written: Int64 = 0
            for try await buffer in body {
                try Task.checkCancellation()
                guard written + Int64(buffer.readableBytes) <= limit else { throw CommuneError("the chunk goes past Upload-Length") }
                let bytes = Array(buffer.readableBytesView)
                try await NIOThreadPool.singleton.runIfActive { try writer.write(bytes) }
                sha256.update(data: bytes)
                sha1.update(data: bytes)
                written += Int64(bytes.count)
            }
            return (written, Data(sha256.finalize()).base64EncodedString(), Data(sha1.finalize()).base64EncodedString())
        }
        await locks.setStopper(id, lease) { reading.cancel() }
        let outcome = await reading.result
        let written = writer.written
        switch outcome {
        case .success(let (_, sha256, sha1)):
            if let checksum, (checksum.algorithm == "sha256" ? sha256 : sha1) != String(checksum.expected) {
                try await blocking { try writer.finish(keep: false) }
                return reply(Self.checksumMismatch, "the chunk's checksum does not match: send it again")
            }
            try await blocking { try writer.finish(keep: true) }
        case .failure(let error):
            // Cut off (or stopped by a newer PATCH): keep what arrived, so the box resumes from it.
            try await blocking { try writer.finish(keep: true) }
            try await catalog.setOffset(id: id, upload.offset + written)
            if error is CommuneError { return reply(.badRequest, "\(error)") }
            logger.notice("tus: body cut off; kept what arrived", metadata: ["id": "\(id)", "bytes": "\(written)"])
            return reply(.badRequest, "the body was cut off after \(written) bytes; resume from Upload-Offset")
        }
        let newOffset = upload.offset + written
        try await catalog.setOffset(id: id, newOffset)
        if newOffset == upload.length {
            if let failure = try await finish(upload, path: path) { return failure }
        }
        return reply(.noContent, headers: [(Tus.Header.uploadOffset, String(newOffset))])
    }

    /// Verifies the whole file and files it as a clip; a response when it must be refused.
    func finish(_ upload: Catalog.Upload, path: String) async throws -> Response? {
        let metadata = try UploadMetadata(decoding: upload.metadata)
        let sha = try await blocking { try Self.sha256(path) }
        guard sha == metadata["sha256"] else {
            _ = try await blocking { unlink(path) }
            try await catalog.deleteUpload(id: upload.id)
            logger.error("tus: whole-file sha256 mismatch; upload discarded", metadata: ["id": "\(upload.id)", "device": "\(upload.device)"])
            return reply(.gone, "the file's sha256 does not match its metadata: it was discarded; upload it again")
        }
        if metadata["kind"] == "preview" { return try await finishPreview(upload, metadata: metadata, path: path, sha256: sha) }
        let start = Timestamp(rfc3339: metadata["start"]!)!
        if let held = try await catalog.clip(device: upload.device, start: start, sha256: sha, request: metadata["request"]) {
            // Sent again after the answer to the first upload was lost: one clip, not two.
            _ = try await blocking { unlink(path) }
            try await catalog.deleteUpload(id: upload.id)
            logger.notice("tus: clip already filed; the copy is dropped", metadata: ["id": "\(upload.id)", "device": "\(upload.device)", "clip": "\(held.id)"])
            return nil
        }
        // Its seal: checked against the device's enrolled key before it is filed (issue 13).
        let enrolled = try await catalog.publicKey(device: upload.device)
        let named = metadata["chain_seq"].flatMap { Int64($0) }
        let device = upload.device
        let declaredDamaged = metadata["damaged"] == "card"
        let proof = try await blocking {
            ClipProof.examine(path: path, device: device, enrolledKey: enrolled, namedSeq: named, declaredDamaged: declaredDamaged)
        }
        if proof.status != .verified {
            logger.warning("tus: clip \(proof.status.rawValue)", metadata: ["id": "\(upload.id)", "device": "\(upload.device)", "why": "\(proof.detail)"])
        }
        let dir = "\(configuration.data)/\(upload.device)/\(metadata["camera"]!)/\(start.day)"
        let final = try await blocking { () throws -> String in
            try Self.makeDirectories(dir)
            var final = "\(dir)/\(start.compact).mp4"
            var n = 1
            while access(final, F_OK) == 0 {  // never overwrite a clip
                n += 1
                final = "\(dir)/\(start.compact)-\(n).mp4"
            }
            guard rename(path, final) == 0 else { throw CommuneError("cannot file the clip: \(String(cString: strerror(errno)))") }
            try Self.fsyncDirectory(dir)
            return final
        }
        try await catalog.fileClip(.init(path: final, device: upload.device, camera: metadata["camera"]!, start: start,
                                         end: Timestamp(rfc3339: metadata["end"]!)!, bytes: upload.length, sha256: sha,
                                         request: metadata["request"], reason: metadata["reason"], receivedAt: .now(),
                                         proof: proof.status.rawValue, proofDetail: proof.detail, chainSeq: proof.seq),
                                   uploadID: upload.id,
                                   records: proof.status == .verified || proof.status == .damaged ? proof.records : [])
        logger.info("tus: clip received and verified", metadata: ["path": "\(final)", "bytes": "\(upload.length)"])
        return nil
    }

    /// Files a whole preview that scans clean beside its request (a later one replaces it);
    /// refuses one that does not, so the box does not send it again.
    func finishPreview(_ upload: Catalog.Upload, metadata: UploadMetadata, path: String, sha256: String) async throws -> Response? {
        let scan = try await blocking { () throws -> PreviewSheet.Scan in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CommuneError("cannot read the preview: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            return try PreviewSheet.scan(size: Int(upload.length), whole: true) { offset, count in try Self.pread(fd, offset: offset, count: count) }
        }
        guard scan.problem == nil, !scan.entries.isEmpty, let request = metadata["request"] else {
            _ = try await blocking { unlink(path) }
            try await catalog.deleteUpload(id: upload.id)
            let why = scan.problem ?? (scan.entries.isEmpty ? "it holds no picture" : "no request")
            logger.error("tus: preview refused", metadata: ["id": "\(upload.id)", "device": "\(upload.device)", "why": "\(why)"])
            return reply(.unprocessableContent, "the preview is not well-formed: \(why); it was discarded")
        }
        // A preview with fewer pictures does not replace one with more (issue 22: a header-only
        // preview replaced a good one).
        if let held = try await catalog.preview(request: request), held.complete, let n = held.pictures, n > scan.entries.count {
            _ = try await blocking { unlink(path) }
            try await catalog.deleteUpload(id: upload.id)
            logger.warning("tus: a preview with fewer pictures than the one held was discarded", metadata: ["request": "\(request)", "held": "\(n)", "sent": "\(scan.entries.count)"])
            return reply(.unprocessableContent, "the commune holds a preview of this request with \(n) pictures; one of \(scan.entries.count) does not replace it")
        }
        let dir = "\(configuration.data)/previews/\(upload.device)"
        let final = "\(dir)/\(request).jpv"
        try await blocking {
            try Self.makeDirectories(dir)
            guard rename(path, final) == 0 else { throw CommuneError("cannot file the preview: \(String(cString: strerror(errno)))") }
            try Self.fsyncDirectory(dir)
        }
        try await catalog.filePreview(request: request, device: upload.device, path: final, bytes: upload.length,
                                      pictures: scan.entries.count, sha256: sha256, uploadID: upload.id)
        logger.info("tus: preview received", metadata: ["request": "\(request)", "pictures": "\(scan.entries.count)", "bytes": "\(upload.length)"])
        return nil
    }

    /// `count` bytes at `offset` (fewer at the end of the file).
    public static func pread(_ fd: Int32, offset: Int, count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buf.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 { if errno == EINTR { continue }; throw CommuneError("cannot read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            done += n
        }
        return Array(buf.prefix(done))
    }

    func terminate(_ request: Request, id: String) async throws -> Response {
        guard try await device(request) != nil else { return reply(.unauthorized, "a device token is needed") }
        guard let (_, upload) = try await owned(request, id: id) else { return reply(.notFound) }
        _ = try await blocking { unlink(self.partPath(upload.id)) }
        try await catalog.deleteUpload(id: upload.id)
        return reply(.noContent)
    }

    /// Deletes every expired upload's part file and row; returns how many. `commune serve` runs
    /// it at start and every minute.
    @discardableResult
    public func sweepExpired(now: Timestamp = .now()) async throws -> Int {
        let ids = try await catalog.expiredUploads(now: now)
        for id in ids {
            _ = try await blocking { unlink(self.partPath(id)) }
            try await catalog.deleteUpload(id: id)
        }
        if !ids.isEmpty { logger.notice("tus: expired uploads swept", metadata: ["count": "\(ids.count)"]) }
        return ids.count
    }

    func expire(_ upload: Catalog.Upload) async throws -> Response {
        _ = try await blocking { unlink(self.partPath(upload.id)) }
        try await catalog.deleteUpload(id: upload.id)
        return reply(.gone, "the upload expired; create it again")
    }

    func partPath(_ id: String) -> String { "\(configuration.data)/.uploads/\(id).part" }

    // MARK: blocking file work, on the NIO thread pool

    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    /// Creates the missing directories of `path`, fsyncing the parent of each one it creates,
    /// so a clip filed in a new day's directory is still there after a power cut.
    public static func makeDirectories(_ path: String) throws {
        var built = ""
        for part in path.split(separator: "/") {
            let parent = built.isEmpty ? "/" : built
            built += "/" + part
            if mkdir(built, 0o755) == 0 {
                try fsyncDirectory(parent)
            } else if errno != EEXIST {
                throw CommuneError("cannot create \(built): \(String(cString: strerror(errno)))")
            }
        }
    }

    public static func fsyncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CommuneError("cannot open \(path) to make it durable: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CommuneError("cannot make \(path) durable: \(String(cString: strerror(errno)))") }
    }

    static func createFile(_ path: String) throws {
        try makeDirectories(String(path[..<path.lastIndex(of: "/")!]))
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CommuneError("cannot create \(path): \(String(cString: strerror(errno)))") }
        close(fd)
    }

    public static func sha256(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CommuneError("cannot read \(path)") }
        defer { close(fd) }
        var hasher = SHA256()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw CommuneError("cannot read \(path)") }
            if n == 0 { break }
            buf.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hex(Array(hasher.finalize()))
    }
}

/// Writes one PATCH body at the upload's offset, and on `finish` either syncs it or cuts the
/// file back to where it was.
final class ChunkWriter: @unchecked Sendable {
    let fd: Int32
    let start: Int64
    private(set) var written: Int64 = 0   // touched by one reading task at a time

    init(path: String, offset: Int64) throws {
        fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CommuneError("cannot open \(path): \(String(cString: strerror(errno)))") }
        start = offset
    }

    func write(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(start + written) + off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw CommuneError("cannot write an upload: \(String(cString: strerror(errno)))") }
            done += n
        }
        written += Int64(bytes.count)
    }

    func finish(keep: Bool) throws {
        defer { close(fd) }
        if !keep {
            written = 0
            guard ftruncate(fd, off_t(start)) == 0 else { throw CommuneError("cannot cut an upload back: \(String(cString: strerror(errno)))") }
        } else {
            guard ftruncate(fd, off_t(start + written)) == 0 else { throw CommuneError("cannot trim an upload: \(String(cString: strerror(errno)))") }
        }
        guard fdatasync(fd) == 0 else { throw CommuneError("cannot sync an upload: \(String(cString: strerror(errno)))") }
    }
}

/// One writer per upload. A newcomer stops the current holder (whose body may hang on a dead
/// connection for minutes) and waits for it to let go.
actor UploadLocks {
    private var holders: [String: (lease: Int, stop: (@Sendable () -> Void)?)] = [:]
    private var next = 0

    func acquire(_ id: String) async -> Int {
        for _ in 0..<1000 {  // bounded: a stopped holder lets go within milliseconds
            guard let holder = holders[id] else { break }
            holder.stop?()
            try? await Task.sleep(for: .milliseconds(10))
        }
        next += 1
        holders[id] = (next, nil)
        return next
    }

    func setStopper(_ id: String, _ lease: Int, _ stop: @escaping @Sendable () -> Void) {
        if holders[id]?.lease == lease { holders[id]?.stop = stop }
    }

    func release(_ id: String, _ lease: Int) {
        if holders[id]?.lease == lease { holders[id] = nil }
    }
}

public struct CommuneError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ s: String) { description = s }
}
