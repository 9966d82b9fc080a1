import Evidence
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Wire

/// The commune's JSON API. Boxes: `POST /api/v1/heartbeat` (device token). Operators (operator
/// token, `commune operators add`): `GET/POST /api/v1/requests`, `GET /api/v1/clips`,
/// `GET /api/v1/devices`.
public struct ControlEndpoint: Sendable {
    let catalog: Catalog
    let logger: Logger
    /// Bodies beyond this are refused (413): a heartbeat is a few kilobytes.
    public var maxBodyBytes = Heartbeat.Limits.maxBodyBytes
    /// The commune's own key: it countersigns each box's chain head (issue 13).
    let communeKey: DeviceKey?
    /// Devices whose chain records were refused, and when: they are not asked again for an hour
    /// (a box re-enrolled with a new key still holds records sealed by its old one).
    let chainRefused = ChainRefusals()

    final class ChainRefusals: Sendable {
        let at = Mutex<[String: Timestamp]>([:])
        func recent(_ device: String, now: Timestamp) -> Bool {
            at.withLock { $0[device].map { now.milliseconds - $0.milliseconds < 3_600_000 } ?? false }
        }
        func note(_ device: String, now: Timestamp) { at.withLock { $0[device] = now } }
    }

    public init(catalog: Catalog, communeKey: DeviceKey? = nil, logger: Logger) {
        self.catalog = catalog
        self.communeKey = communeKey
        self.logger = logger
    }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("api/v1/heartbeat") { request, _ in try await self.heartbeat(request) }
        router.get("api/v1/requests") { request, _ in
            try await self.asOperator(request) { _ in try await json(.ok, self.catalog.requests(device: request.uri.queryParameters["device"].map(String.init))) }
        }
        router.post("api/v1/requests") { request, _ in try await self.asOperator(request) { name in try await self.newRequest(request, by: name) } }
        router.post("api/v1/requests/:id/narrow") { request, context in
            let id = context.parameters.get("id") ?? ""
            return try await self.asOperator(request) { name in try await self.narrow(request, id: id, by: name) }
        }
        router.get("api/v1/clips") { request, _ in
            try await self.asOperator(request) { _ in try await json(.ok, self.catalog.clips(device: request.uri.queryParameters["device"].map(String.init))) }
        }
        router.get("api/v1/devices") { request, _ in try await self.asOperator(request) { _ in try await json(.ok, self.catalog.devices()) } }
        router.get("api/v1/releases/:version/:arch") { request, context in
            try await self.releaseBundle(request, version: context.parameters.get("version") ?? "", arch: context.parameters.get("arch") ?? "", context: context)
        }
    }

    /// The largest range one request of a release may ask for.
    public static let maxReleaseRange = 16 << 20

    /// A release bundle to a box, by byte range (`Range: bytes=A-B`, one range, at most
    /// `maxReleaseRange`): 206 with Content-Range; 416 for a range outside the file; a request
    /// without a range gets the first `maxReleaseRange` bytes as 206 too, so no answer is larger.
    func releaseBundle<Context: RequestContext>(_ request: Request, version: String, arch: String, context: Context) async throws -> Response {
        guard let token = Self.bearer(request), try await catalog.device(token: token) != nil else {
            return text(.unauthorized, "a device token is needed (Authorization: Bearer …)")
        }
        guard let release = try await catalog.release(version: version, arch: arch) else { return text(.notFound, "no such release") }
        let size = release.bytes
        var first: Int64 = 0, last = min(size, Int64(Self.maxReleaseRange)) - 1
        if let header = request.headers[.range] {
            guard let (a, b) = Self.parseRange(header, size: size) else {
                var h = HTTPFields()
                h[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: h)
            }
            first = a
            last = min(b, a + Int64(Self.maxReleaseRange) - 1)
        }
        let body = try await FileIO().loadFile(path: release.path, range: Int(first)...Int(last), context: context)
        var h = HTTPFields()
        h[.contentRange] = "bytes \(first)-\(last)/\(size)"
        h[.contentLength] = String(last - first + 1)
        h[.contentType] = "application/octet-stream"
        h[.acceptRanges] = "bytes"
        return Response(status: .partialContent, headers: h, body: body)
    }

    /// `bytes=A-B` or `bytes=A-` within a file of `size` bytes; nil for anything else.
    static func parseRange(_ header: String, size: Int64) -> (Int64, Int64)? {
        guard header.hasPrefix("bytes="), header.utf8.count <= 64 else { return nil }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2, spec[0].utf8.count <= 19, spec[1].utf8.count <= 19, let a = Int64(spec[0]), a >= 0, a < size else { return nil }
        if spec[1].isEmpty { return (a, size - 1) }
        guard let b = Int64(spec[1]), b >= a else { return nil }
        return (a, min(b, size - 1))
    }

    static func bearer(_ request: Request) -> String? {
        guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") else { return nil }
        return String(auth.dropFirst(7))
    }

    func heartbeat(_ request: Request) async throws -> Response {
        guard let token = Self.bearer(request), let device = try await catalog.device(token: token) else {
            return text(.unauthorized, "a device token is needed (Authorization: Bearer …)")
        }
        let report: Heartbeat.Report
        switch try await decode(Heartbeat.Report.self, request) {
        case .success(let r): report = r
        case .failure(let e): return e.response
        }
        guard report.device == device else { return text(.forbidden, "this token belongs to device \(device), not \(report.device)") }
        if let problem = Heartbeat.problem(report) { return text(.contentTooLarge, problem) }
        try await catalog.setHealth(device: device, report.health)
        for r in report.requests { try await catalog.report(device: device, r) }
        let open = try await catalog.requests(device: device, openOnly: true)
        // The oldest open requests first, as many as an answer carries (the box reads no more).
        var reply = Heartbeat.Reply(requests: open.prefix(Heartbeat.Limits.maxRequests).map(\.footageRequest))
        if let a = report.activity, try await catalog.addActivity(device: device, a) == nil {
            logger.warning("activity: a heartbeat's activity broke its rules and was not kept", metadata: ["device": "\(device)"])
        }
        reply.activityFrom = try await catalog.activityFrom(device: device)
        if let u = report.update {
            let (offer, events) = try await catalog.fleet(device: device, report: u, openRequest: !open.isEmpty,
                                                          recording: report.health.recording == "recording")
            reply.update = offer
            for e in events { logger.notice("fleet: \(e)") }
        }
        if let s = report.settings {
            let (offer, events) = try await catalog.settingsHeartbeat(device: device, report: s)
            reply.settings = offer
            for e in events { logger.notice("settings: \(e)") }
        }
        if let head = report.evidence {
            (reply.countersign, reply.keyProblem) = try await countersign(head, device: device)
            if reply.keyProblem == nil { reply.keyBinding = try await binding(head, device: device) }
            // The chain records a request's proof still lacks: those this report carries are
            // kept (each checked under the bound key), and the next stretch asked for.
            let asked = report.chain?.isEmpty == false ? try await catalog.chainWanted(device: device) : nil
            let (added, refused) = try await catalog.addChainRecords(device: device, report.chain ?? [], wanted: asked)
            if let refused {
                chainRefused.note(device, now: .now())
                logger.warning("evidence: chain records refused; not asked again for an hour", metadata: ["device": "\(device)", "why": "\(refused)"])
            }
            if added > 0 { logger.info("evidence: chain records kept", metadata: ["device": "\(device)", "records": "\(added)"]) }
            if reply.keyProblem == nil, !chainRefused.recent(device, now: .now()) {
                reply.chainWanted = try await catalog.chainWanted(device: device)
            }
        }
        return try json(.ok, reply)
    }

    /// Binds the box's key at first sight, refuses a different one, and countersigns its head.
    func countersign(_ head: Heartbeat.ChainHead, device: String) async throws -> (Heartbeat.Countersign?, String?) {
        guard DeviceKey.publicKey(base64: head.publicKey) != nil else { return (nil, "the heartbeat's public_key is not an Ed25519 public key") }
        switch try await catalog.bindKey(device: device, publicKey: head.publicKey) {
        case .refused(let since):
            logger.warning("evidence: a different key for a device", metadata: ["device": "\(device)"])
            return (nil, "this box's key is not the one enrolled for \(device)\(since.map { " on \($0)" } ?? ""): its footage is filed unverified until an operator re-enrols it (commune devices rekey \(device))")
        case .bound:
            logger.notice("evidence: device key bound", metadata: ["device": "\(device)"])
        case .same:
            break
        }
        guard let seq = head.seq, seq > 0, let hash = head.hash, ChainRecord.isHash(hash), let communeKey else { return (nil, nil) }
        let c = try Heartbeat.Countersign.make(device: device, deviceKey: head.publicKey, seq: seq, hash: hash, receivedAt: .now(), key: communeKey)
        try await catalog.addCountersign(c)
        return (c, nil)
    }

    /// The commune's binding of the key the box sent (made the first time), once it is bound.
    func binding(_ head: Heartbeat.ChainHead, device: String) async throws -> KeyBinding? {
        guard let communeKey, try await catalog.publicKey(device: device) == head.publicKey else { return nil }
        return try await catalog.keyBinding(device: device, deviceKey: head.publicKey, communeKey: communeKey.publicKeyBase64) { at in
            try KeyBinding.make(device: device, deviceKey: head.publicKey, boundAt: at, key: communeKey)
        }
    }

    struct NewRequest: Decodable {
        var device: String
        var camera: String?
        var from: Timestamp
        var to: Timestamp
        var reason: String?
    }

    func newRequest(_ request: Request, by officer: String) async throws -> Response {
        switch try await decode(NewRequest.self, request) {
        case .failure(let e): return e.response
        case .success(let n):
            do {
                let made = try await catalog.addRequest(device: n.device, camera: n.camera, from: n.from, to: n.to, reason: n.reason)
                try await catalog.audit(operator: officer, address: "api", action: "request",
                                        detail: "\(made.id) \(made.device) \(made.from)–\(made.to) \(made.reason ?? "")")
                logger.notice("footage requested", metadata: ["id": "\(made.id)", "device": "\(made.device)"])
                return try json(.created, made)
            } catch let e as Catalog.RequestError {
                return text(.badRequest, e.description)
            }
        }
    }

    struct Narrowing: Decodable {
        var from: Timestamp
        var to: Timestamp
    }

    /// Narrows a request to the part that matters (issue 14): the box stops sending the rest.
    func narrow(_ request: Request, id: String, by officer: String) async throws -> Response {
        guard PlainName.isValid(id) else { return text(.notFound, "there is no request \(id.prefix(64))") }
        switch try await decode(Narrowing.self, request) {
        case .failure(let e): return e.response
        case .success(let n):
            do {
                let before = try await catalog.requests(id: id).first
                let narrowed = try await catalog.narrow(request: id, from: n.from, to: n.to)
                try await catalog.audit(operator: officer, address: "api", action: "request narrowed",
                                        detail: "\(id) \(before.map { "\($0.from)–\($0.to)" } ?? "") → \(n.from)–\(n.to)")
                logger.notice("request narrowed", metadata: ["id": "\(id)"])
                return try json(.ok, narrowed)
            } catch let e as Catalog.NarrowError {
                if case .noRequest = e { return text(.notFound, e.description) }
                return text(.badRequest, e.description)
            }
        }
    }

    /// Runs `body` with the operator a bearer token belongs to (their actions are audited under their name).
    func asOperator(_ request: Request, _ body: (String) async throws -> Response) async throws -> Response {
        guard let token = Self.bearer(request), let name = try await catalog.operator(token: token) else {
            return text(.unauthorized, "an operator token is needed (commune operators add NAME)")
        }
        return try await body(name)
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> Result<T, ResponseError> {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            return .failure(ResponseError(text(.contentTooLarge, "the body is over \(maxBodyBytes) bytes")))
        }
        do {
            return .success(try Heartbeat.decode(T.self, from: Array(body.readableBytesView)))
        } catch let e as DecodingError {
            return .failure(ResponseError(text(.badRequest, "the body is not the JSON expected: \(e.plain)")))
        } catch {
            return .failure(ResponseError(text(.badRequest, "the body is not the JSON expected: \(error)")))
        }
    }

    struct ResponseError: Error { let response: Response; init(_ r: Response) { response = r } }
}

extension Result where Failure == ControlEndpoint.ResponseError {
    static func failure(_ r: Response) -> Self { .failure(ControlEndpoint.ResponseError(r)) }
}

func json<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) throws -> Response {
    var h = HTTPFields()
    h[.contentType] = "application/json"
    h[.cacheControl] = "no-store"
    return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(bytes: try Heartbeat.encode(value))))
}

func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
    var h = HTTPFields()
    h[.contentType] = "text/plain; charset=utf-8"
    return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(string: message + "\n")))
}
