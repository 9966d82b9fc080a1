import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

extension Heartbeat.Countersign {
    /// The commune countersigns the head a box sent with its key, at the time it received it.
    public static func make(device: String, deviceKey: String, seq: Int64, hash: String, receivedAt: Timestamp, key: DeviceKey) throws(ChainError) -> Self {
        let message = Data(message(device: device, deviceKey: deviceKey, seq: seq, hash: hash, receivedAt: receivedAt))
        return .init(device: device, deviceKey: deviceKey, seq: seq, hash: hash, receivedAt: receivedAt,
                     signature: try key.sign(message).base64EncodedString(), communeKey: key.publicKeyBase64)
    }

    /// True when the signature is valid under `communeKey` (or, when given, the key a verifier
    /// trusts as the commune's: a countersignature under any other key vouches for nothing).
    public func isValid(trusting trusted: Curve25519.Signing.PublicKey? = nil) -> Bool {
        guard let key = trusted ?? DeviceKey.publicKey(base64: communeKey) else { return false }
        return DeviceKey.isValid(signature: signature, of: message, by: key)
    }
}

extension KeyBinding {
    /// The commune binds `deviceKey` to `device`, as of `boundAt`.
    public static func make(device: String, deviceKey: String, boundAt: Timestamp, key: DeviceKey) throws(ChainError) -> KeyBinding {
        let message = Data(message(device: device, deviceKey: deviceKey, boundAt: boundAt, communeKey: key.publicKeyBase64))
        return .init(device: device, deviceKey: deviceKey, boundAt: boundAt, communeKey: key.publicKeyBase64,
                     signature: try key.sign(message).base64EncodedString())
    }

    /// True when this is a version-1 binding whose signature is valid under the commune key it names.
    public var isValid: Bool {
        guard v == 1, let key = DeviceKey.publicKey(base64: communeKey), DeviceKey.publicKey(base64: deviceKey) != nil else { return false }
        return DeviceKey.isValid(signature: signature, of: message, by: key)
    }
}

/// The signature of an export manifest (issue 23), `<proof>/manifest.sig`: whoever exported the
/// footage signs the manifest a person reads, the box with its device key (`junction export`),
/// the commune with its own (the desk's package). The message signed is
/// `junction-manifest/1\n` followed by the lowercase hex SHA-256 of the manifest file's bytes
/// with every CR LF taken as LF (a Windows tool may rewrite its line endings).
public struct ManifestSeal: Codable, Sendable, Equatable {
    public enum Signer: String, Codable, Sendable { case box, commune }
    public var v: Int
    public var signer: Signer
    public var key: String
    public var signature: String

    public static let file = "manifest.sig"

    public static func message(manifest: Data) -> Data {
        var normalized = Data(capacity: manifest.count)
        var i = manifest.startIndex
        while i < manifest.endIndex {
            let b = manifest[i]
            let next = manifest.index(after: i)
            if b == 0x0D, next < manifest.endIndex, manifest[next] == 0x0A { i = next; continue }
            normalized.append(b)
            i = next
        }
        return Data(("junction-manifest/1\n" + hex(SHA256.hash(data: normalized))).utf8)
    }

    public static func make(manifest: Data, signer: Signer, key: DeviceKey) throws(ChainError) -> ManifestSeal {
        .init(v: 1, signer: signer, key: key.publicKeyBase64, signature: try key.sign(message(manifest: manifest)).base64EncodedString())
    }

    /// True when the signature over `manifest` is valid under this seal's key.
    public func isValid(manifest: Data) -> Bool {
        guard v == 1, let key = DeviceKey.publicKey(base64: key) else { return false }
        return DeviceKey.isValid(signature: signature, of: Self.message(manifest: manifest), by: key)
    }
}
