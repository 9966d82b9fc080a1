import HTTPTypes
import NIOHTTPTypes
import NIOCore
import NIOHTTP1
import Synchronization

/// How many connections `commune serve` holds, and for how long (README, "Limits"). Without
/// them 300 idle TCP connections on a 256-descriptor server locked out every box (issue 11).
/// - `idleSeconds`: a connection that sends nothing for this long is closed: an idle keep-alive,
///   a request head that never completes (slowloris), a body that stops making progress.
/// - `maxConnections`: all clients together; kept below the process's descriptor limit.
/// - `maxPerAddress`: one address (one box, one officer's PC, one attacker) gets this many.
public struct ConnectionLimits: Sendable {
    public var idleSeconds: Int64 = 30
    public var maxConnections = 1000
    public var maxPerAddress = 64
    public init() {}

    /// `maxConnections` lowered to fit the descriptor limit, leaving room for clips, the
    /// catalog and logs.
    public func fitted(toDescriptorLimit limit: Int) -> ConnectionLimits {
        var c = self
        c.maxConnections = max(8, min(maxConnections, limit - 64))
        c.maxPerAddress = min(maxPerAddress, c.maxConnections)
        return c
    }
}

/// Counts open connections, in all and per remote address.
public final class ConnectionCounter: Sendable {
    let limits: ConnectionLimits
    let state = Mutex<(total: Int, perAddress: [String: Int])>((0, [:]))

    public init(limits: ConnectionLimits) { self.limits = limits }

    /// Takes a slot for `address`, or says no.
    func admit(_ address: String) -> Bool {
        state.withLock { s in
            guard s.total < limits.maxConnections, s.perAddress[address, default: 0] < limits.maxPerAddress else { return false }
            s.total += 1
            s.perAddress[address, default: 0] += 1
            return true
        }
    }

    func release(_ address: String) {
        state.withLock { s in
            s.total -= 1
            let n = s.perAddress[address, default: 1] - 1
            s.perAddress[address] = n > 0 ? n : nil
        }
    }

    public var open: Int { state.withLock { $0.total } }

    /// The handler to put first in each connection's pipeline: over a limit, the connection is
    /// closed at once (before TLS or HTTP spend anything on it).
    public func handler() -> AdmissionHandler { AdmissionHandler(counter: self) }
}

public final class AdmissionHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    public typealias InboundIn = NIOAny
    let counter: ConnectionCounter

    init(counter: ConnectionCounter) { self.counter = counter }

    public func handlerAdded(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "?"
        guard counter.admit(address) else {
            context.close(promise: nil)
            return
        }
        let counter = self.counter
        context.channel.closeFuture.whenComplete { _ in counter.release(address) }
    }
}

/// A request whose head is over NIO's limits (80 kB of fields) gets 431 with what happened,
/// instead of a bare 400 with an empty body.
public final class HeaderOverflowHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundOut = HTTPResponsePart

    public init() {}

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError, parse == .headerOverflow else {
            context.fireErrorCaught(error)
            return
        }
        let text = "the request's header fields are too large (over 80 kB): send fewer or shorter headers\n"
        var head = HTTPResponse(status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"))
        head.headerFields[.contentType] = "text/plain; charset=utf-8"
        head.headerFields[.contentLength] = String(text.utf8.count)
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: text))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
