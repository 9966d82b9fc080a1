#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// The box's HTTP client (issue 25, item 2): HTTP/1.1 over NIO, TLS by NIOSSL, and nothing else.
/// async-http-client brought HTTP/2, HPACK, compression, SOCKS and its configuration with it,
/// about 5 MB of a 40 MB binary, for a box that only ever talks HTTP/1.1 to one commune.
///
/// What it does, each exchange: a kept-alive connection to the origin if one is idle (at most
/// `maxIdlePerOrigin`, closed after `stall` unused), else a new one (`connectTimeout`); the
/// request's head, then its body in slices (each paid for in the rate limiter first, when there
/// is one); the answer's head and body, at most `maxBodyBytes` kept (a larger one is read to
/// its end and dropped, and the connection not reused). It fails when no byte moves either way
/// for `stall`, when the whole exchange outlasts its deadline, when the task is cancelled, and
/// on TLS and connection errors (NIOSSL's and NIO's own, by type). It never follows a redirect:
/// a 3xx is an answer like any other. Proxies are not supported (the README promises none).
public final class HTTP1Client: Sendable {
    public struct Configuration: Sendable {
        public var tls: TLSConfiguration
        public var connectTimeout: TimeAmount = .seconds(10)
        /// No byte moving either way for this long ends the exchange (and an idle connection).
        public var stall: TimeAmount = .seconds(30)
        public var maxIdlePerOrigin = 4
        /// The most of an answer's body kept (tus answers have none; the heartbeat's is JSON).
        public var maxBodyBytes = 1 << 20
        /// The slice size bodies are written in when no rate limiter paces them.
        public var writeSlice = 64 << 10

        public init(tls: TLSConfiguration = .makeClientConfiguration()) { self.tls = tls }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
    }

    public let configuration: Configuration
    let group: any EventLoopGroup
    let tls: NIOSSLContext
    private let idle = Mutex<(closed: Bool, byOrigin: [String: [Channel]])>((false, [:]))

    public init(configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.configuration = configuration
        self.group = group
        tls = try NIOSSLContext(configuration: configuration.tls)
    }

    /// Closes the idle connections; an exchange under way finishes on its own connection.
    public func shutdown() async throws {
        let channels = idle.withLock { state -> [Channel] in
            state.closed = true
            defer { state.byOrigin = [:] }
            return state.byOrigin.values.flatMap { $0 }
        }
        for c in channels { try? await c.close() }
    }

    /// One exchange: `url` absolute http(s), `headers` as given (Host and Content-Length are
    /// the client's), the body paced by `limiter` when given, all of it within `deadline`.
    public func execute(method: String, url: String, headers: [String: String], body: [UInt8],
                        limiter: RateLimiter? = nil, deadline: NIODeadline) async throws -> Response {
        let target = try Target(url)
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: target.uri)
        head.headers.add(name: "Host", value: target.hostHeader)
        for (name, value) in headers where name.lowercased() != "host" && name.lowercased() != "content-length" {
            head.headers.replaceOrAdd(name: name, value: value)
        }
        if !body.isEmpty || ["POST", "PATCH", "PUT"].contains(method) {
            head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        }
        let requestHead = head
        let channel = try await connection(to: target, deadline: deadline)
        let exchange = channel.eventLoop.makePromise(of: Exchange.Result.self)
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            exchange.fail(HTTP1Error.deadline)
            channel.close(promise: nil)
        }
        // Whatever way this ends, the promise is completed (a second completion is ignored).
        defer {
            timer.cancel()
            exchange.fail(HTTP1Error.closedEarly)
        }
        return try await withTaskCancellationHandler {
            // The request's end goes out in the same flush as its last bytes: the answer to them
            // cannot overtake it, and a connection is reused only when its request was whole.
            let empty = body.isEmpty
            do {
                try await channel.pipeline.handler(type: Exchange.self).flatMap { handler in
                    handler.begin(exchange, maxBodyBytes: self.configuration.maxBodyBytes)
                    guard empty else { return channel.writeAndFlush(HTTPClientRequestPart.head(requestHead)) }
                    channel.write(HTTPClientRequestPart.head(requestHead), promise: nil)
                    return channel.writeAndFlush(HTTPClientRequestPart.end(nil))
                }.get()
            } catch ChannelPipelineError.notFound {
                // The connection closed (the server, or its stall timer) before the request began.
                throw HTTP1Error.closedEarly
            }
            do {
                var offset = 0
                var step = configuration.writeSlice
                if let limiter { step = await limiter.slice }
                while offset < body.count {
                    let n = min(step, body.count - offset)
                    if let limiter { try await limiter.take(n) }
                    let part = HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body[offset..<(offset + n)])))
                    offset += n
                    if offset < body.count {
                        try await channel.writeAndFlush(part).get()
                    } else {
                        channel.write(part, promise: nil)
                        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
                    }
                }
            } catch {
                // The server may have answered before taking the whole body (a 4xx, then a
                // close): that answer is the result. Otherwise the exchange fails with why.
                channel.close(promise: nil)
                _ = try? await exchange.futureResult.get()
            }
            let result = try await exchange.futureResult.get()
            if result.reusable { release(channel, origin: target.origin) } else { channel.close(promise: nil) }
            return Response(status: Int(result.head.status.code),
                            headers: result.head.headers.map { ($0.name, $0.value) }, body: result.body)
        } onCancel: {
            exchange.fail(CancellationError())
            channel.close(promise: nil)
        }
    }

    // MARK: connections

    struct Target {
        var https: Bool
        var host: String
        var port: Int
        var uri: String
        var origin: String { "\(https ? "https" : "http")://\(host):\(port)" }
        var hostHeader: String {
            let h = host.contains(":") ? "[\(host)]" : host
            return port == (https ? 443 : 80) ? h : "\(h):\(port)"
        }
        var isIPAddress: Bool { host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." } }

        init(_ text: String) throws {
            guard text.utf8.count <= 8192, let url = URL(string: text), let scheme = url.scheme?.lowercased(),
                  scheme == "http" || scheme == "https", var host = url.host(percentEncoded: true), !host.isEmpty else {
                throw HTTP1Error.badURL(String(text.prefix(200)))
            }
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            https = scheme == "https"
            self.host = host
            port = url.port ?? (https ? 443 : 80)
            guard (1...65535).contains(port) else { throw HTTP1Error.badURL(String(text.prefix(200))) }
            let path = url.path(percentEncoded: true)
            uri = (path.isEmpty ? "/" : path) + (url.query(percentEncoded: true).map { "?" + $0 } ?? "")
        }
    }

    func connection(to target: Target, deadline: NIODeadline) async throws -> Channel {
        while let reused = idle.withLock({ $0.byOrigin[target.origin]?.popLast() }) {
            if reused.isActive { return reused }
        }
        if idle.withLock({ $0.closed }) { throw HTTP1Error.shutDown }
        let tls = target.https ? self.tls : nil
        let serverName = target.isIPAddress ? nil : target.host
        let stall = configuration.stall
        let timeout = min(configuration.connectTimeout, max(.milliseconds(1), deadline - .now()))
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try sync.addHandler(Handshake(promise: channel.eventLoop.makePromise()))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(IdleStateHandler(allTimeout: stall))
                    try sync.addHandler(Exchange())
                }
            }
            .connect(host: target.host, port: target.port).get()
        // Over TLS, the handshake first: a certificate that does not verify is NIOSSL's error
        // (by type, as the uplink and doctor tell it), not a write on a closed channel later.
        if target.https {
            let timer = channel.eventLoop.scheduleTask(deadline: min(deadline, .now() + configuration.connectTimeout)) {
                channel.close(promise: nil)
            }
            defer { timer.cancel() }
            do {
                try await channel.pipeline.handler(type: Handshake.self).flatMap { $0.promise.futureResult }.get()
            } catch ChannelPipelineError.notFound {
                throw HTTP1Error.closedEarly
            } catch {
                channel.close(promise: nil)
                throw error
            }
        }
        return channel
    }

    func release(_ channel: Channel, origin: String) {
        let kept = idle.withLock { state -> Bool in
            guard !state.closed, channel.isActive, state.byOrigin[origin, default: []].count < configuration.maxIdlePerOrigin else { return false }
            state.byOrigin[origin, default: []].append(channel)
            return true
        }
        if !kept { channel.close(promise: nil) }
    }
}

public enum HTTP1Error: Error, Sendable, CustomStringConvertible {
    case badURL(String)
    case deadline
    case stalled
    case closedEarly
    case shutDown

    public var description: String {
        switch self {
        case .badURL(let u): "\(u) is not an http(s) address"
        case .deadline: "no whole answer within the request's deadline"
        case .stalled: "no byte moved either way for the stall timeout: the peer went silent"
        case .closedEarly: "the server closed the connection before its answer ended"
        case .shutDown: "the client is shut down"
        }
    }
}

/// Right after NIOSSL's handler: completes when the TLS handshake has, or fails with its error.
final class Handshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(HTTP1Error.closedEarly)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(HTTP1Error.closedEarly)
    }
}

/// The last handler of a connection: collects one answer at a time for the exchange under way.
/// An answer that ends before the request did (a 413 or 460 to a big PATCH) is the result, and
/// the connection is closed: the rest of the body is not sent.
final class Exchange: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    struct Result: Sendable {
        var head: HTTPResponseHead
        var body: [UInt8]
        var reusable: Bool
    }

    private var promise: EventLoopPromise<Result>?
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    private var overflow = false
    private var maxBodyBytes = 0
    private var requestEnded = false

    func begin(_ promise: EventLoopPromise<Result>, maxBodyBytes: Int) {
        self.promise = promise
        self.maxBodyBytes = maxBodyBytes
        head = nil
        body = []
        overflow = false
        requestEnded = false
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { requestEnded = true }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            // 1xx answers (100 Continue) come before the real one.
            if h.status.code >= 100, h.status.code < 200, h.status.code != 101 { return }
            head = h
        case .body(var b):
            if overflow || body.count + b.readableBytes > maxBodyBytes {
                overflow = true
                body = []
            } else {
                body += b.readBytes(length: b.readableBytes) ?? []
            }
        case .end:
            guard let head, let promise else {
                // An answer nobody asked for: the connection is not to be trusted again.
                context.close(promise: nil)
                return
            }
            self.promise = nil
            self.head = nil
            promise.succeed(Result(head: head, body: body, reusable: head.isKeepAlive && !overflow && requestEnded))
            body = []
            if !requestEnded { context.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            fail(HTTP1Error.stalled)
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(HTTP1Error.closedEarly)
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        promise?.fail(error)
        promise = nil
    }
}
