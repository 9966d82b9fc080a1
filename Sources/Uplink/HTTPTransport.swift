import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL

/// The real `TusTransport`: async-http-client. HTTPS by default; http:// only when the config
/// allows it explicitly (the caller checks `server.allow_insecure_http`). With a rate limiter,
/// bodies go out in paced slices (`upload.max_kbps`).
public struct HTTPTransport: TusTransport {
    public let client: HTTPClient
    /// Every exchange gets this long, plus the time its body needs at `slowestBytesPerSecond`:
    /// a request stuck on a dead link fails in seconds, not minutes, and the probe takes over.
    let baseTimeoutSeconds: Double
    let slowestBytesPerSecond: Double
    let limiter: RateLimiter?

    public init(client: HTTPClient = .shared, baseTimeoutSeconds: Double = 15, slowestBytesPerSecond: Double = 16_000,
                limiter: RateLimiter? = nil) {
        self.client = client
        self.baseTimeoutSeconds = baseTimeoutSeconds
        self.slowestBytesPerSecond = slowestBytesPerSecond
        self.limiter = limiter
    }

    /// The uplink's client: a 10 s connect timeout, and the CAs in `caFile` (PEM) trusted
    /// instead of the system's when given. A connection on which no byte moves for `stall`
    /// (writing the body, or waiting for the answer) is dropped: a peer that went silent (a
    /// server killed behind a proxy, a NAT that forgot the flow) fails the request in seconds,
    /// where the whole-request deadline of a 4 MiB chunk would wait minutes.
    public static func makeClient(caFile: String?, stall: TimeAmount = .seconds(30)) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw UplinkError("server.ca_file \(caFile) is not a PEM certificate file: \(error)")
            }
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout.connect = .seconds(10)
        configuration.timeout.read = stall
        configuration.timeout.write = stall
        // Never follow a redirect: it could lead the token or footage to another server or to
        // plain http. A 3xx is an answer like any other (the upload says what it got).
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func perform(_ request: TusRequest) async throws -> TusResponse {
        var r = HTTPClientRequest(url: request.url)
        r.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { r.headers.replaceOrAdd(name: name, value: value) }
        if let limiter, !request.body.isEmpty {
            r.body = .stream(PacedBody(bytes: request.body, limiter: limiter, slice: await limiter.slice),
                             length: .known(Int64(request.body.count)))
        } else if !request.body.isEmpty || request.method == "PATCH" || request.method == "POST" {
            r.body = .bytes(ByteBuffer(bytes: request.body))
        }
        var rate = slowestBytesPerSecond
        if let limiter { rate = min(rate, limiter.bytesPerSecond / 2) }
        let seconds = baseTimeoutSeconds + Double(request.body.count) / rate
        let response = try await client.execute(r, timeout: .milliseconds(Int64(seconds * 1000)))
        var headers: [String: String] = [:]
        for field in response.headers { headers[field.name] = field.value }
        // Read (bounded) so the connection can be reused.
        let body = (try? await response.body.collect(upTo: 1 << 20)).map { Array($0.readableBytesView) } ?? []
        return TusResponse(status: Int(response.status.code), headers: headers, body: body)
    }
}

/// A body handed to the HTTP client slice by slice, each slice paid for in the bucket first.
struct PacedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let bytes: [UInt8]
    let limiter: RateLimiter
    let slice: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: PacedBody
        var offset = 0
        mutating func next() async throws -> ByteBuffer? {
            guard offset < body.bytes.count else { return nil }
            let n = Swift.min(body.slice, body.bytes.count - offset)
            try await body.limiter.take(n)
            defer { offset += n }
            return ByteBuffer(bytes: body.bytes[offset..<offset + n])
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}
