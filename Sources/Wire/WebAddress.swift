#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An http(s) address the box sends its token or footage to, parsed as RFC 3986 says (by
/// Foundation's `URL`): a scheme of http or https, a host, an optional port. The rule (issue 11):
/// the token and footage go only over https, unless `allow_insecure_http` says otherwise, and
/// only to the host the config names: a `Location` or redirect elsewhere is refused.
public struct WebAddress: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int

    public var isHTTPS: Bool { scheme == "https" }
    /// "https://host:port": two addresses with the same origin are the same server.
    public var origin: String { "\(scheme)://\(host):\(port)" }

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case notAnAddress, notWeb(scheme: String), noHost, badPort, plainHTTP, otherServer(expected: String)
        public var description: String {
            switch self {
            case .notAnAddress: "is not a web address: write it like \"https://commune.example.vn\""
            case .notWeb(let scheme): "uses \(scheme)://, which is not a web address: use https://"
            case .noHost: "has no server name after the scheme: write it like \"https://commune.example.vn\""
            case .badPort: "has a port that is not 1–65535"
            case .plainHTTP: "is plain http://: the token and footage would travel unencrypted. Use https://, or set server.allow_insecure_http = true on a trusted network"
            case .otherServer(let expected): "points at another server than \(expected): refused, the token goes only to the configured server"
            }
        }
    }

    /// Parses `text`; `allowHTTP` false refuses http://.
    public init(_ text: String, allowHTTP: Bool) throws(Problem) {
        guard text.utf8.count <= 2048, !text.contains(where: { $0.isWhitespace }),
              let url = URL(string: text), let scheme = url.scheme?.lowercased() else { throw .notAnAddress }
        guard scheme == "https" || scheme == "http" else { throw .notWeb(scheme: scheme) }
        guard let host = url.host(percentEncoded: true), !host.isEmpty else { throw .noHost }
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { throw .badPort }
        if scheme == "http" && !allowHTTP { throw .plainHTTP }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
    }

    /// Checks that `text` (an absolute URL a server sent) goes to the same server as `self`.
    public func checkSameServer(_ text: String, allowHTTP: Bool) throws(Problem) {
        let other = try WebAddress(text, allowHTTP: allowHTTP)
        guard other.host == host, other.port == port, other.scheme == scheme || other.isHTTPS else {
            throw .otherServer(expected: origin)
        }
    }
}
