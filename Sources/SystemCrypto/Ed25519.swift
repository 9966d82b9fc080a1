internal import CLibCrypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public enum CryptoError: Error, Sendable, Equatable {
    /// A raw key of the wrong length (Ed25519's are 32 bytes).
    case incorrectKeySize(Int)
    /// libcrypto refused (a key that is no point of the curve, or no memory).
    case failed(String)
}

/// Ed25519 (RFC 8032, pure): the device keys that seal segments, the commune's countersigning
/// key and the release keys.
public enum Curve25519 {
    public enum Signing {
        public struct PublicKey: Sendable, Hashable {
            private let raw: [UInt8]

            public init<D: ContiguousBytes>(rawRepresentation: D) throws {
                let raw = rawRepresentation.withUnsafeBytes { Array($0) }
                guard raw.count == 32 else { throw CryptoError.incorrectKeySize(raw.count) }
                self.raw = raw
            }

            public var rawRepresentation: Data { Data(raw) }

            /// False for a signature of the wrong length, another message or another key.
            public func isValidSignature<S: DataProtocol, D: DataProtocol>(_ signature: S, for data: D) -> Bool {
                let sig = Array(signature), message = Array(data)
                guard sig.count == 64 else { return false }
                return jlc_ed25519_verify(raw, message, message.count, sig) == 1
            }
        }

        public struct PrivateKey: Sendable {
            private let raw: [UInt8]
            public let publicKey: PublicKey

            /// A new key from the system's random source.
            public init() {
                var raw = [UInt8](repeating: 0, count: 32)
                guard jlc_random_bytes(&raw, 32) == 1 else { fatalError("libcrypto has no random bytes") }
                // A key from 32 random bytes is always valid.
                try! self.init(rawRepresentation: raw)
            }

            public init<D: ContiguousBytes>(rawRepresentation: D) throws {
                let raw = rawRepresentation.withUnsafeBytes { Array($0) }
                guard raw.count == 32 else { throw CryptoError.incorrectKeySize(raw.count) }
                var pub = [UInt8](repeating: 0, count: 32)
                guard jlc_ed25519_public_key(raw, &pub) == 1 else { throw CryptoError.failed("libcrypto refused the Ed25519 private key") }
                self.raw = raw
                publicKey = try PublicKey(rawRepresentation: pub)
            }

            public var rawRepresentation: Data { Data(raw) }

            public func signature<D: DataProtocol>(for data: D) throws -> Data {
                let message = Array(data)
                var sig = [UInt8](repeating: 0, count: 64)
                guard jlc_ed25519_sign(raw, message, message.count, &sig) == 1 else { throw CryptoError.failed("libcrypto could not sign") }
                return Data(sig)
            }
        }
    }
}
