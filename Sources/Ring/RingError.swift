/// What went wrong with the ring: the card, the index or a segment file.
public struct RingError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The data directory cannot be created, written or read.
        case storage
        /// The index database cannot be opened or queried.
        case index
        /// A segment file is not what its row says (size, hash).
        case dataLoss
        /// A request the ring cannot honour (bad range, nothing left of it).
        case invalidArgument
        /// A flag would take pinned bytes past `storage.max_pinned_percent`.
        case pinCapReached
    }

    public var code: Code
    public var message: String
    public var path: String?
    public var underlying: String?

    public init(_ code: Code, _ message: String, path: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.underlying = underlying.map { String(describing: $0) }
    }

    public var description: String {
        var s = message
        if let path { s += " (\(path))" }
        if let underlying { s += ": \(underlying)" }
        return s
    }
}
