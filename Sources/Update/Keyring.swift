import SystemCrypto
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The release keys a box trusts: Ed25519 public keys, base64 (standard alphabet, padded), one
/// a line; `#` starts a comment. The image carries it at `/usr/share/junction/release-keys`, so a
/// release may bring the next key with it (rotation) while the box still checks the bundle
/// against the keyring it booted with.
public struct Keyring: Sendable {
    public let keys: [Curve25519.Signing.PublicKey]
    public static let maxKeys = 16

    public init(keys: [Curve25519.Signing.PublicKey]) { self.keys = keys }

    public init(text: String) throws(UpdateError) {
        var keys: [Curve25519.Signing.PublicKey] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = trimmed(raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0])
            if line.isEmpty { continue }
            guard line.utf8.count <= 60, let data = Data(base64Encoded: line), data.count == 32,
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: data) else {
                throw .malformed("release keyring line \(n + 1) is not a base64 Ed25519 public key")
            }
            keys.append(key)
            guard keys.count <= Self.maxKeys else { throw .malformed("the release keyring holds more than \(Self.maxKeys) keys") }
        }
        self.keys = keys
    }

    public static func load(path: String) throws(UpdateError) -> Keyring {
        guard let data = FileManager.default.contents(atPath: path) else { throw .untrusted("there is no release keyring at \(path)") }
        guard data.count <= 8192 else { throw .malformed("the release keyring \(path) is larger than 8 KiB") }
        return try Keyring(text: String(decoding: data, as: UTF8.self))
    }

    public var isEmpty: Bool { keys.isEmpty }
    public var fingerprints: [String] { keys.map(Self.fingerprint) }

    public static func fingerprint(_ key: Curve25519.Signing.PublicKey) -> String {
        String(hex(SHA256.hash(data: key.rawRepresentation)).prefix(16))
    }

    /// The fingerprint of the key whose signature `signature` (base64 of 64 bytes) is over `message`.
    public func signer(of signature: String, message: [UInt8]) -> String? {
        guard signature.utf8.count <= 100, let sig = Data(base64Encoded: signature), sig.count == 64 else { return nil }
        return keys.first { $0.isValidSignature(sig, for: message) }.map(Self.fingerprint)
    }
}

/// The private release key on the build machine: `junction-release-key/1 <base64 seed>`. The
/// project's test key is `image/release-key.TEST-ONLY`; a real fleet makes its own
/// (`junction update keygen`) and keeps it off every box.
public struct ReleaseKey: Sendable {
    public let key: Curve25519.Signing.PrivateKey
    static let header = "junction-release-key/1 "

    public init(_ key: Curve25519.Signing.PrivateKey) { self.key = key }

    public static func load(path: String) throws(UpdateError) -> ReleaseKey {
        guard let data = FileManager.default.contents(atPath: path), data.count < 200 else { throw .io("cannot read the release key \(path)") }
        let text = trimmed(Substring(String(decoding: data, as: UTF8.self)))
        guard text.hasPrefix(header), let seed = Data(base64Encoded: String(text.dropFirst(header.count))), seed.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw .malformed("\(path) is not a release key (\(header)<base64 seed>)")
        }
        return ReleaseKey(key)
    }

    public var text: String { Self.header + key.rawRepresentation.base64EncodedString() + "\n" }
    public var publicText: String { key.publicKey.rawRepresentation.base64EncodedString() + "\n" }

    func sign(_ message: [UInt8]) throws(UpdateError) -> String {
        do { return try key.signature(for: message).base64EncodedString() } catch { throw .io("cannot sign: \(error)") }
    }
}

/// Without spaces, tabs and line ends at either side.
func trimmed(_ s: Substring) -> String {
    let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
    return String(s.drop(while: blank).reversed().drop(while: blank).reversed())
}
