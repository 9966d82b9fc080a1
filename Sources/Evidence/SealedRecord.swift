import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// A record with the box's Ed25519 signature over `junction-seal/1\n` + the record's hash. Every
/// record is sealed on its own: a seal is 64 bytes and ~50 µs of CPU per segment (README,
/// "Evidence": cost), and a single seal per record means any stretch of the chain verifies
/// without the records around it.
extension SealedRecord {
    public var hash: String { ChainRecord.hash(body) }

    /// The record, when the body is one.
    public var record: ChainRecord? { try? ChainRecord.parse(body) }

    static func message(hash: String) -> Data { Data("junction-seal/1\n\(hash)".utf8) }

    /// Seals a record with the device's key.
    public static func seal(_ record: ChainRecord, with key: DeviceKey) throws(ChainError) -> SealedRecord {
        let body = record.body()
        return SealedRecord(body: body, signature: try key.sign(message(hash: ChainRecord.hash(body))).base64EncodedString())
    }

    /// True when the seal is `publicKey`'s signature over this body.
    public func isSealed(by publicKey: Curve25519.Signing.PublicKey) -> Bool {
        guard signature.utf8.count <= 200, let sig = Data(base64Encoded: signature), sig.count == 64 else { return false }
        return publicKey.isValidSignature(sig, for: Self.message(hash: hash))
    }
}
