import NIOCore
import NIOSSL

/// The real `TusTransport`: `HTTP1Client` (HTTP/1.1 over NIO and NIOSSL). HTTPS by default;
/// http:// only when the config allows it explicitly (the caller checks
/// `server.allow_insecure_http`). With a rate limiter, bodies go out in paced slices
/// (`upload.max_kbps`).
public struct HTTPTransport: TusTransport {
    public let client: HTTP1Client
    /// Every exchange gets this long, plus the time its body needs at `slowestBytesPerSecond`:
    /// a request stuck on a dead link fails in seconds, not minutes, and the probe takes over.
    let baseTimeoutSeconds: Double
    let slowestBytesPerSecond: Double
    let limiter: RateLimiter?

    public init(client: HTTP1Client = .shared, baseTimeoutSeconds: Double = 15, slowestBytesPerSecond: Double = 16_000,
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
    /// where the whole-request deadline of a 4 MiB chunk would wait minutes. Redirects are never
    /// followed: one could lead the token or footage to another server or to plain http.
    public static func makeClient(caFile: String?, stall: TimeAmount = .seconds(30)) throws -> HTTP1Client {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw UplinkError("server.ca_file \(caFile) is not a PEM certificate file: \(error)")
            }
        }
        var configuration = HTTP1Client.Configuration(tls: tls)
        configuration.connectTimeout = .seconds(10)
        configuration.stall = stall
        do {
            return try HTTP1Client(configuration: configuration)
        } catch {
            throw UplinkError("cannot set up TLS for the commune: \(error)")
        }
    }

    public func perform(_ request: TusRequest) async throws -> TusResponse {
        var rate = slowestBytesPerSecond
        if let limiter { rate = min(rate, limiter.bytesPerSecond / 2) }
        let seconds = baseTimeoutSeconds + Double(request.body.count) / rate
        let response = try await client.execute(method: request.method, url: request.url, headers: request.headers,
                                                body: request.body, limiter: limiter,
                                                deadline: .now() + .milliseconds(Int64(seconds * 1000)))
        var headers: [String: String] = [:]
        for field in response.headers { headers[field.name] = field.value }
        return TusResponse(status: response.status, headers: headers, body: response.body)
    }
}

extension HTTP1Client {
    /// A client trusting the system's CAs, for tools and tests (the daemon makes its own with
    /// `HTTPTransport.makeClient`). Its TLS context reads no file, so making it cannot fail but
    /// for memory.
    public static let shared: HTTP1Client = try! HTTP1Client(configuration: .init())
}
