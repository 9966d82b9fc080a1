import Foundation
import Wire
import Config

/// `commune.toml`: what `commune serve --config` reads. Flags given on the command line win.
///
///     [server]
///     data = "/var/lib/commune"
///     listen = "0.0.0.0:8443"
///     cert = "/etc/commune/chain.pem"
///     key = "/etc/commune/key.pem"
///     # insecure_http = true          # plain HTTP (behind a TLS proxy, or a trusted network)
///     [limits]
///     max_upload_bytes = "2GB"        # one file (one segment)
///     device_quota_bytes = "200GB"    # all of one device's clips
///     max_connections = 1000          # all clients together (kept under LimitNOFILE)
///     max_connections_per_address = 64
///     idle_seconds = 30               # a connection silent this long is closed
///     [desk]
///     time_zone = "Asia/Ho_Chi_Minh"  # dates on the desk are read and written in it
///     session_hours = 8               # a sign-in lasts this long at most (1 h without a request)
///     trusted_proxies = ["127.0.0.1"] # a TLS proxy in front: the client is the address it names in X-Forwarded-For
struct CommuneConfiguration {
    var data: String?
    var listen: String?
    var cert: String?
    var key: String?
    var insecureHTTP: Bool?
    var maxUploadBytes: Int64?
    var deviceQuotaBytes: Int64?
    var maxConnections: Int?
    var maxConnectionsPerAddress: Int?
    var idleSeconds: Int?
    var timeZone: String?
    var sessionHours: Int?
    var trustedProxies: [String]?

    static let known: Set<String> = ["server.data", "server.listen", "server.cert", "server.key", "server.insecure_http",
                                     "limits.max_upload_bytes", "limits.device_quota_bytes", "limits.max_connections",
                                     "limits.max_connections_per_address", "limits.idle_seconds",
                                     "desk.time_zone", "desk.session_hours", "desk.trusted_proxies"]

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func load(path: String) throws -> CommuneConfiguration {
        let text: String
        do {
            text = try ConfigFile.read(path: path)
        } catch {
            throw Failure(description: error.description)
        }
        let doc: TOMLDocument
        do {
            doc = try TOMLDocument(parsing: text)
        } catch {
            throw Failure(description: "\(path):\(error.line): \(error.message)")
        }
        var c = CommuneConfiguration()
        for (key, value) in doc.entries where !known.contains(key) {
            throw Failure(description: "\(path):\(value.line): unknown key \(key) (known: \(known.sorted().joined(separator: ", ")))")
        }
        func string(_ key: String) throws -> String? {
            guard let v = doc[key] else { return nil }
            guard case .string(let s) = v.kind else { throw Failure(description: "\(path):\(v.line): \(key) must be a string in quotes") }
            return s
        }
        func size(_ key: String) throws -> Int64? {
            guard let v = doc[key] else { return nil }
            switch v.kind {
            case .integer(let i) where i > 0: return Int64(i)
            case .string(let s): if let b = ByteSize(parsing: s) { return Int64(b.bytes) }
            default: break
            }
            throw Failure(description: "\(path):\(v.line): \(key) must be a size like \"2GB\"")
        }
        c.data = try string("server.data")
        c.listen = try string("server.listen")
        c.cert = try string("server.cert")
        c.key = try string("server.key")
        if let v = doc["server.insecure_http"] {
            guard case .bool(let b) = v.kind else { throw Failure(description: "\(path):\(v.line): server.insecure_http must be true or false") }
            c.insecureHTTP = b
        }
        c.maxUploadBytes = try size("limits.max_upload_bytes")
        c.deviceQuotaBytes = try size("limits.device_quota_bytes")
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = doc[key] else { return nil }
            guard case .integer(let i) = v.kind, let n = Int(exactly: i), range.contains(n) else {
                throw Failure(description: "\(path):\(v.line): \(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        c.maxConnections = try int("limits.max_connections", 8...100_000)
        c.maxConnectionsPerAddress = try int("limits.max_connections_per_address", 1...100_000)
        c.idleSeconds = try int("limits.idle_seconds", 5...3600)
        c.timeZone = try string("desk.time_zone")
        if let zone = c.timeZone, LocalTime(identifier: zone) == nil {
            throw Failure(description: "\(path):\(doc["desk.time_zone"]?.line ?? 0): desk.time_zone \"\(TerminalText.safe(zone))\" is not a time zone; use a name like \"Asia/Ho_Chi_Minh\"")
        }
        c.sessionHours = try int("desk.session_hours", 1...24)
        if let v = doc["desk.trusted_proxies"] {
            guard case .array(let items) = v.kind, items.count <= 16 else {
                throw Failure(description: "\(path):\(v.line): desk.trusted_proxies must be a list of at most 16 addresses, e.g. [\"127.0.0.1\"]")
            }
            c.trustedProxies = try items.map { item in
                guard case .string(let a) = item, !a.isEmpty, a.utf8.count <= 45, a.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) else {
                    throw Failure(description: "\(path):\(v.line): desk.trusted_proxies holds something that is not an IP address, e.g. \"127.0.0.1\" or \"::1\"")
                }
                return a
            }
        }
        return c
    }
}
