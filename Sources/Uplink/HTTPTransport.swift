import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// The real `TusTransport`: async-http-client. HTTPS by default; http:// only when the config
/// allows it explicitly (the caller checks `server.allow_insecure_http`).
public struct HTTPTransport: TusTransport {
    let client: HTTPClient
    let timeoutSeconds: Int64

    public init(client: HTTPClient = .shared, timeoutSeconds: Int64 = 60) {
        self.client = client
        self.timeoutSeconds = timeoutSeconds
    }

    public func perform(_ request: TusRequest) async throws -> TusResponse {
        var r = HTTPClientRequest(url: request.url)
        r.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { r.headers.replaceOrAdd(name: name, value: value) }
        if !request.body.isEmpty || request.method == "PATCH" || request.method == "POST" {
            r.body = .bytes(ByteBuffer(bytes: request.body))
        }
        let response = try await client.execute(r, timeout: .seconds(timeoutSeconds))
        var headers: [String: String] = [:]
        for field in response.headers { headers[field.name] = field.value }
        // Drain (bounded) so the connection can be reused.
        _ = try? await response.body.collect(upTo: 1 << 20)
        return TusResponse(status: Int(response.status.code), headers: headers)
    }
}
