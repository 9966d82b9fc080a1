import Crypto
import Foundation
import Wire

extension Heartbeat.Countersign {
    /// The commune countersigns the head a box sent, at the time it received it.
    public static func make(device: String, seq: Int64, hash: String, receivedAt: Timestamp, key: DeviceKey) throws(ChainError) -> Self {
        let message = Data(message(device: device, seq: seq, hash: hash, receivedAt: receivedAt))
        return .init(device: device, seq: seq, hash: hash, receivedAt: receivedAt, signature: try key.sign(message).base64EncodedString(),
                     communeKey: key.publicKeyBase64)
    }

    /// True when the signature is valid under `communeKey` (or, when given, the key a verifier
    /// trusts as the commune's: a countersignature under any other key vouches for nothing).
    public func isValid(trusting trusted: Curve25519.Signing.PublicKey? = nil) -> Bool {
        guard let key = trusted ?? DeviceKey.publicKey(base64: communeKey),
              signature.utf8.count <= 200, let sig = Data(base64Encoded: signature), sig.count == 64 else { return false }
        return key.isValidSignature(sig, for: Data(message))
    }
}
