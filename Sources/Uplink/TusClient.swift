import SystemCrypto
import NIOSSL
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One HTTP exchange of the tus protocol. The uplink's real transport is an HTTP client; tests
/// use an in-memory server.
public struct TusRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    public var headers: [String: String]
    public var body: [UInt8]

    public init(method: String, url: String, headers: [String: String], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct TusResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [String: String]
    /// The body, up to a megabyte (tus answers have none; the heartbeat's is JSON).
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

public protocol TusTransport: Sendable {
    /// Performs one request; throws when no answer came (refused, reset, timeout, TLS).
    func perform(_ request: TusRequest) async throws -> TusResponse
}

/// Drives a `TusUploadStateMachine` with a transport: the I/O half of the tus client.
public struct TusClient: Sendable {
    public let transport: any TusTransport
    /// The creation endpoint, e.g. "https://commune.example/files/".
    public let collectionURL: String
    /// Sent as `Authorization: Bearer …` (prints as <redacted>).
    public let token: Secret?

    public init(transport: any TusTransport, collectionURL: String, token: Secret?) {
        self.transport = transport
        self.collectionURL = collectionURL
        self.token = token
    }

    public enum Result: Sendable, Equatable {
        case uploaded(url: String, resentBytes: Int64)
        case failed(reason: String, kind: TusUploadStateMachine.FailureKind)
        /// `proceed` said no: the file is no longer wanted (a narrowed request); progress is kept.
        case stopped
    }

    /// Uploads until done, a permanent failure, or cancellation.
    /// - Parameters:
    ///   - read: returns `length` bytes of the file from `offset` (off the shared pool).
    ///   - save: called with the progress after every step, to keep it across reboots.
    ///   - sleep: waits between retries (injected so tests do not wait).
    ///   - chunkLearned: told the chunk size the link settled on, so the next file starts there.
    ///   - proceed: asked before each request; false stops the upload between two chunks.
    public func upload(length: Int64, metadata: UploadMetadata, progress: TusUploadStateMachine.Progress,
                       checksum: TusUploadStateMachine.ChecksumAlgorithm?,
                       configuration: TusUploadStateMachine.Configuration = .init(),
                       read: @Sendable (Int64, Int) async throws -> [UInt8],
                       save: @Sendable (TusUploadStateMachine.Progress) async -> Void,
                       sleep: @Sendable (Double) async throws -> Void,
                       chunkLearned: (@Sendable (Int) -> Void)? = nil,
                       proceed: (@Sendable () async -> Bool)? = nil) async throws -> Result {
        var machine = TusUploadStateMachine(length: length, metadata: metadata, progress: progress,
                                            checksum: checksum, configuration: configuration)
        while true {
            try Task.checkCancellation()
            let action = machine.next()
            switch action {
            case .done(let url):
                return .uploaded(url: url, resentBytes: machine.resentBytes)
            case .failed(let reason, let kind):
                return .failed(reason: reason, kind: kind)
            case .wait(let seconds):
                try await sleep(seconds)
                continue
            case .create, .head, .patch:
                break
            }
            if let proceed, await !proceed() { return .stopped }
            let request = try await makeRequest(for: action, read: read)
            let started = ContinuousClock.now
            let outcome: TusUploadStateMachine.Outcome
            do {
                var response = try await transport.perform(request)
                if let key = response.headers.keys.first(where: { $0.lowercased() == "location" }) {
                    // Keep the absolute URL so a reboot resumes against the same upload.
                    let resolved = Self.resolve(response.headers[key]!, against: collectionURL)
                    // The token and the footage go only where the config says: a Location on
                    // another host, port or a weaker scheme is refused, never followed.
                    if let problem = Self.refusedLocation(resolved, collectionURL: collectionURL) {
                        return .failed(reason: problem, kind: .refused)
                    }
                    response.headers[key] = resolved
                }
                outcome = .response(status: response.status, headers: response.headers, seconds: seconds(since: started))
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // A failed TLS handshake is not a dropped link: retrying it every two seconds
                // cannot help (a wrong CA, a clock far off); the queue waits long before the next.
                if Self.isTLSFailure(error) { return .failed(reason: "TLS: \(error)", kind: .tls) }
                outcome = .transportError(String(describing: error), seconds: seconds(since: started))
            }
            machine.handle(action, outcome, random: Double.random(in: 0..<1))
            chunkLearned?(machine.chunk)
            await save(machine.progress)
        }
    }

    func makeRequest(for action: TusUploadStateMachine.Action,
                     read: @Sendable (Int64, Int) async throws -> [UInt8]) async throws -> TusRequest {
        var headers = [Tus.Header.resumable: Tus.version]
        if let token { headers["Authorization"] = "Bearer " + token.reveal() }
        switch action {
        case .create(let length, let metadata, let first, let checksum):
            headers[Tus.Header.uploadLength] = String(length)
            headers[Tus.Header.uploadMetadata] = metadata
            guard first > 0 else { return TusRequest(method: "POST", url: collectionURL, headers: headers) }
            let body = try await read(0, first)
            headers[Tus.Header.contentType] = Tus.Header.offsetOctetStream
            if let checksum { headers[Tus.Header.uploadChecksum] = Self.checksumHeader(checksum, body) }
            return TusRequest(method: "POST", url: collectionURL, headers: headers, body: body)
        case .head(let url):
            return TusRequest(method: "HEAD", url: url, headers: headers)
        case .patch(let url, let offset, let length, let checksum):
            let body = try await read(offset, length)
            headers[Tus.Header.uploadOffset] = String(offset)
            headers[Tus.Header.contentType] = Tus.Header.offsetOctetStream
            if let checksum { headers[Tus.Header.uploadChecksum] = Self.checksumHeader(checksum, body) }
            return TusRequest(method: "PATCH", url: url, headers: headers, body: body)
        default:
            preconditionFailure("no request for \(action)")
        }
    }

    /// `Upload-Checksum`: the algorithm and the base64 digest of the body.
    static func checksumHeader(_ algorithm: TusUploadStateMachine.ChecksumAlgorithm, _ body: [UInt8]) -> String {
        switch algorithm {
        case .sha256: "sha256 " + Data(SHA256.hash(data: body)).base64EncodedString()
        case .sha1: "sha1 " + Data(Insecure.SHA1.hash(data: body)).base64EncodedString()
        }
    }

    /// Whether `error` is a TLS handshake or certificate failure (by type, from NIOSSL).
    static func isTLSFailure(_ error: any Error) -> Bool {
        error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
    }

    /// Why the upload must not follow `location` (nil: it may): it must be on the collection
    /// URL's host and port, over https, or over http only when the collection URL itself is
    /// http (which the config allows only with `allow_insecure_http`).
    public static func refusedLocation(_ location: String, collectionURL: String) -> String? {
        do throws(WebAddress.Problem) {
            let base = try WebAddress(collectionURL, allowHTTP: true)
            try base.checkSameServer(location, allowHTTP: !base.isHTTPS)
            return nil
        } catch {
            return "the server answered Location \(String(location.prefix(200))), which \(error); nothing was sent there"
        }
    }

    /// Resolves a `Location` header ("/files/abc" or a full URL) against the collection URL.
    public static func resolve(_ location: String, against base: String) -> String {
        if location.contains("://") { return location }
        guard let schemeEnd = base.firstRange(of: "://") else { return location }
        // "//host/path" is a network-path reference (RFC 3986, 4.2): another host, same scheme.
        if location.hasPrefix("//") { return String(base[..<schemeEnd.lowerBound]) + ":" + location }
        let afterScheme = base[schemeEnd.upperBound...]
        let hostEnd = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
        let origin = String(base[..<hostEnd])
        if location.hasPrefix("/") { return origin + location }
        let dir = base.hasSuffix("/") ? base : String(base[...(base.lastIndex(of: "/") ?? base.startIndex)])
        return dir + location
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
