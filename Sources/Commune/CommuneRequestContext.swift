import Hummingbird
import NIOCore

/// The commune's request context: Hummingbird's core context plus the client's address, which
/// the desk writes into its audit log and uses to slow password guessing.
public struct CommuneRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address as text ("unknown" when the channel had none).
    public var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}
