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
/// - When all `maxConnections` are taken, a newcomer from an address holding fewer than the
///   biggest holder is let in, and the biggest holder's longest-quiet connection is closed for
///   it (issue 22: 16 addresses × 63 connections, reopened every 30 s, left 2 of 15 boxes' and
///   officers' requests answered in 80 s). Many connections from few addresses cannot crowd
///   out the few connections of many.
/// - `exempt`: addresses held to no per-address cap and closed last (the desk's trusted
///   proxies, behind which every officer shares one address).
public struct ConnectionLimits: Sendable {
    public var idleSeconds: Int64 = 30
    public var maxConnections = 1000
    public var maxPerAddress = 64
    public var exempt: Set<String> = []
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

/// Counts open connections, in all and per remote address, and when each last sent a byte.
public final class ConnectionCounter: Sendable {
    let limits: ConnectionLimits
    struct Open { let channel: any Channel; var lastRead: NIODeadline }
    struct State {
        var total = 0
        var perAddress: [String: [ObjectIdentifier: Open]] = [:]
    }
    let state = Mutex(State())

    public init(limits: ConnectionLimits) { self.limits = limits }

    /// Takes a slot for `channel` from `address`, closing another connection for it when full
    /// (see `ConnectionLimits`), or says no.
    func admit(_ address: String, _ channel: any Channel, now: NIODeadline = .now()) -> Bool {
        let (admitted, evicted): (Bool, (any Channel)?) = state.withLock { s in
            let mine = s.perAddress[address]?.count ?? 0
            let exempt = limits.exempt.contains(address)
            guard exempt || mine < limits.maxPerAddress else { return (false, nil) }
            var evicted: (any Channel)?
            if s.total >= limits.maxConnections {
                // The biggest holder that is not exempt, if it holds more than this address would.
                guard let (victim, open) = s.perAddress.filter({ !limits.exempt.contains($0.key) }).max(by: { $0.value.count < $1.value.count }),
                      open.count > mine + 1, let quiet = open.min(by: { $0.value.lastRead < $1.value.lastRead }) else { return (false, nil) }
                s.perAddress[victim]?[quiet.key] = nil
                if s.perAddress[victim]?.isEmpty == true { s.perAddress[victim] = nil }
                s.total -= 1
                evicted = quiet.value.channel
            }
            s.total += 1
            s.perAddress[address, default: [:]][ObjectIdentifier(channel)] = Open(channel: channel, lastRead: now)
            return (true, evicted)
        }
        evicted?.close(promise: nil)
        return admitted
    }

    /// The connection sent bytes: it is not the quiet one.
    func touch(_ address: String, _ channel: any Channel, now: NIODeadline = .now()) {
        state.withLock { $0.perAddress[address]?[ObjectIdentifier(channel)]?.lastRead = now }
    }

    func release(_ address: String, _ channel: any Channel) {
        state.withLock { s in
            guard s.perAddress[address]?.removeValue(forKey: ObjectIdentifier(channel)) != nil else { return }  // evicted: counted already
            s.total -= 1
            if s.perAddress[address]?.isEmpty == true { s.perAddress[address] = nil }
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
        let channel = context.channel
        guard counter.admit(address, channel) else {
            context.close(promise: nil)
            return
        }
        let counter = self.counter
        channel.closeFuture.whenComplete { _ in counter.release(address, channel) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        counter.touch(context.channel.remoteAddress?.ipAddress ?? "?", context.channel)
        context.fireChannelRead(data)
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
