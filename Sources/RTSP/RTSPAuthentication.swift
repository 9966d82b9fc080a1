#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Camera sign-in (RFC 2617 as RTSP uses it): a 401's `WWW-Authenticate` chosen (Digest over
/// Basic when both are offered), and the `Authorization` header for each later request. Digest
/// is MD5, `qop=auth` when the camera offers it (with a counted nonce), else the RFC 2069 form
/// most cameras use. Bounds: a challenge at most 2 KiB, 16 parameters, each value 512 bytes.
public struct RTSPAuthentication: Sendable, Equatable {
    public enum Scheme: Sendable, Equatable {
        case basic
        case digest(realm: String, nonce: String, opaque: String?, qop: Bool)
    }

    public var scheme: Scheme
    public var user: String
    public var password: String
    private var nonceCount: UInt32 = 0

    public static let maxChallengeBytes = 2048
    public static let maxParameters = 16

    /// The scheme from a 401's challenges, or why none can be used.
    public init(challenges: [String], user: String, password: String) throws(RTSPError) {
        var basic = false
        var digest: Scheme?
        for c in challenges {
            guard c.utf8.count <= Self.maxChallengeBytes else { throw RTSPError("the camera's sign-in challenge is over \(Self.maxChallengeBytes) bytes") }
            let lower = c.lowercased()
            if lower.hasPrefix("basic") { basic = true }
            if lower.hasPrefix("digest") {
                let p = try Self.parameters(String(c.dropFirst(6)))
                if let a = p["algorithm"], a.lowercased() != "md5" { continue }
                guard let realm = p["realm"], let nonce = p["nonce"] else { throw RTSPError("the camera's Digest challenge has no realm or nonce") }
                let qop = p["qop"]?.split(separator: ",").contains { $0.trimmingSpacesAndTabs.lowercased() == "auth" } ?? false
                digest = .digest(realm: realm, nonce: nonce, opaque: p["opaque"], qop: qop)
            }
        }
        guard let chosen = digest ?? (basic ? .basic : nil) else {
            throw RTSPError("the camera asks for a sign-in this box does not speak (\(printable((challenges.first ?? "none").prefix(40)))): Digest (MD5) and Basic are supported")
        }
        scheme = chosen
        self.user = user
        self.password = password
    }

    public static func == (a: RTSPAuthentication, b: RTSPAuthentication) -> Bool {
        a.scheme == b.scheme && a.user == b.user && a.password == b.password
    }

    /// The `Authorization` value for `method` on `uri`; `cnonce` is for tests (else random).
    public mutating func header(method: String, uri: String, cnonce: String? = nil) -> String {
        switch scheme {
        case .basic:
            return "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        case .digest(let realm, let nonce, let opaque, let qop):
            let ha1 = MD5.hex(Array("\(user):\(realm):\(password)".utf8))
            let ha2 = MD5.hex(Array("\(method):\(uri)".utf8))
            var h = "Digest username=\"\(user)\", realm=\"\(realm)\", nonce=\"\(nonce)\", uri=\"\(uri)\""
            if qop {
                nonceCount &+= 1
                let nc = String(nonceCount, radix: 16)
                let count = String(repeating: "0", count: 8 - nc.count) + nc
                let cn = cnonce ?? String(UInt64.random(in: 0...UInt64.max), radix: 16)
                let response = MD5.hex(Array("\(ha1):\(nonce):\(count):\(cn):auth:\(ha2)".utf8))
                h += ", qop=auth, nc=\(count), cnonce=\"\(cn)\", response=\"\(response)\""
            } else {
                h += ", response=\"\(MD5.hex(Array("\(ha1):\(nonce):\(ha2)".utf8)))\""
            }
            if let opaque { h += ", opaque=\"\(opaque)\"" }
            return h
        }
    }

    /// `name="value", name=value, …` as challenges write them.
    static func parameters(_ text: String) throws(RTSPError) -> [String: String] {
        var out: [String: String] = [:]
        var s = Substring(text)
        while true {
            while let f = s.first, f == " " || f == "," || f == "\t" { s = s.dropFirst() }
            guard !s.isEmpty else { return out }
            guard let eq = s.firstIndex(of: "=") else { return out }
            let name = s[..<eq].trimmingSpacesAndTabs.lowercased()
            s = s[s.index(after: eq)...]
            var value = ""
            if s.first == "\"" {
                s = s.dropFirst()
                guard let close = s.firstIndex(of: "\"") else { throw RTSPError("the camera's challenge has an unclosed quote") }
                value = String(s[..<close])
                s = s[s.index(after: close)...]
            } else {
                let end = s.firstIndex(of: ",") ?? s.endIndex
                value = s[..<end].trimmingSpacesAndTabs
                s = s[end...]
            }
            guard value.utf8.count <= 512 else { throw RTSPError("the camera's challenge has a value over 512 bytes") }
            guard out.count < maxParameters else { throw RTSPError("the camera's challenge has more than \(maxParameters) parameters") }
            out[name] = value
        }
    }
}

/// MD5 (RFC 1321), for Digest sign-in only: cameras still ask for it.
enum MD5 {
    static let s: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
    static let k: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296)) }

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var m = message
        let bits = UInt64(message.count) &* 8
        m.append(0x80)
        while m.count % 64 != 56 { m.append(0) }
        for i in 0..<8 { m.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        var a0: UInt32 = 0x6745_2301, b0: UInt32 = 0xEFCD_AB89, c0: UInt32 = 0x98BA_DCFE, d0: UInt32 = 0x1032_5476
        for chunk in stride(from: 0, to: m.count, by: 64) {
            var w = [UInt32](repeating: 0, count: 16)
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(m[j]) | UInt32(m[j + 1]) << 8 | UInt32(m[j + 2]) << 16 | UInt32(m[j + 3]) << 24
            }
            var a = a0, b = b0, c = c0, d = d0
            for i in 0..<64 {
                var f: UInt32
                let g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * i) % 16
                }
                f = f &+ a &+ k[i] &+ w[g]
                a = d; d = c; c = b
                b = b &+ (f << s[i] | f >> (32 - s[i]))
            }
            a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
        }
        return [a0, b0, c0, d0].flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
    }

    static func hex(_ message: [UInt8]) -> String {
        digest(message).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
