import Crypto
import Hostile
import SystemCrypto
import Testing
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// SystemCrypto (the system's libcrypto) checked against published vectors and against
/// swift-crypto (BoringSSL, an independent implementation) on the same inputs.
@Suite struct SystemCryptoTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    @Test func shaMatchesThePublishedVectors() {
        // FIPS 180-2 appendix B and C.
        #expect(SystemCrypto.SHA256.hash(data: Array("abc".utf8)).description
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SystemCrypto.SHA256.hash(data: [UInt8]()).description
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var million = SystemCrypto.SHA256()
        let thousand = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { million.update(data: thousand) }
        #expect(million.finalize().description == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(SystemCrypto.Insecure.SHA1.hash(data: Array("abc".utf8)).description == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Array(SystemCrypto.SHA256.hash(data: Array("abc".utf8))).count == 32)
    }

    @Test func shaAgreesWithSwiftCryptoInAnyPiecesAndCopiesGoOnAlone() {
        var rng = SplitMix(seed: 25)
        for round in 0..<100 {
            let size = round < 70 ? round : Int.random(in: 0...20_000, using: &rng)
            let data = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var ours = SystemCrypto.SHA256(), theirs = Crypto.SHA256()
            var ours1 = SystemCrypto.Insecure.SHA1(), theirs1 = Crypto.Insecure.SHA1()
            var at = 0
            var copy: (SystemCrypto.SHA256, Crypto.SHA256)?
            while at < size {
                let n = min(size - at, Int.random(in: 1...9000, using: &rng))
                data[at..<(at + n)].withUnsafeBytes {
                    ours.update(bufferPointer: $0); theirs.update(bufferPointer: $0)
                    ours1.update(bufferPointer: $0); theirs1.update(bufferPointer: $0)
                }
                at += n
                if copy == nil, at > size / 2 { copy = (ours, theirs) }
            }
            #expect(Array(ours.finalize()) == Array(theirs.finalize()), "size \(size)")
            #expect(Array(ours1.finalize()) == Array(theirs1.finalize()), "size \(size)")
            // finalize leaves the hash usable: one more byte changes both alike.
            ours.update(data: [7]); theirs.update(data: [7])
            #expect(Array(ours.finalize()) == Array(theirs.finalize()))
            if var (c, t) = copy {
                // The copy was taken half-way: it knows nothing of what came after.
                #expect(Array(c.finalize()) == Array(t.finalize()))
                c.update(data: [1, 2]); t.update(data: [1, 2])
                #expect(Array(c.finalize()) == Array(t.finalize()))
            }
            #expect(Array(SystemCrypto.SHA256.hash(data: Data(data))) == Array(Crypto.SHA256.hash(data: data)))
        }
    }

    @Test func ed25519MatchesRFC8032() throws {
        let vectors: [(secret: String, public: String, message: String, signature: String)] = [
            ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
             "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
            ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
             "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
             "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ]
        for v in vectors {
            let key = try SystemCrypto.Curve25519.Signing.PrivateKey(rawRepresentation: Self.bytes(v.secret))
            #expect(Array(key.publicKey.rawRepresentation) == Self.bytes(v.public))
            let sig = try key.signature(for: Self.bytes(v.message))
            #expect(Array(sig) == Self.bytes(v.signature))
            #expect(key.publicKey.isValidSignature(sig, for: Self.bytes(v.message)))
            #expect(!key.publicKey.isValidSignature(sig, for: Self.bytes(v.message) + [0]))
        }
    }

    @Test func ed25519AgreesWithSwiftCryptoBothWays() throws {
        var rng = SplitMix(seed: 8032)
        for round in 0..<100 {
            let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let message = (0..<(round * 37)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let ours = try SystemCrypto.Curve25519.Signing.PrivateKey(rawRepresentation: secret)
            let theirs = try Crypto.Curve25519.Signing.PrivateKey(rawRepresentation: secret)
            #expect(ours.publicKey.rawRepresentation == theirs.publicKey.rawRepresentation)
            let sig = try ours.signature(for: message)
            // Pure Ed25519 is deterministic: the same key and message give the same signature.
            #expect(sig == (try theirs.signature(for: message)))
            #expect(theirs.publicKey.isValidSignature(sig, for: message))
            var bad = Array(sig)
            bad[round % 64] ^= 0x01
            #expect(!ours.publicKey.isValidSignature(bad, for: message))
            #expect(!theirs.publicKey.isValidSignature(bad, for: message))
            #expect(!ours.publicKey.isValidSignature(sig.dropLast(), for: message))
            let other = SystemCrypto.Curve25519.Signing.PrivateKey()
            #expect(!other.publicKey.isValidSignature(sig, for: message))
        }
    }

    @Test func keysOfTheWrongSizeAreRefused() {
        for n in [0, 31, 33, 64] {
            let raw = [UInt8](repeating: 1, count: n)
            #expect(throws: SystemCrypto.CryptoError.incorrectKeySize(n)) { try SystemCrypto.Curve25519.Signing.PrivateKey(rawRepresentation: raw) }
            #expect(throws: SystemCrypto.CryptoError.incorrectKeySize(n)) { try SystemCrypto.Curve25519.Signing.PublicKey(rawRepresentation: raw) }
        }
        // New keys differ (from the system's random source).
        let a = SystemCrypto.Curve25519.Signing.PrivateKey(), b = SystemCrypto.Curve25519.Signing.PrivateKey()
        #expect(a.rawRepresentation != b.rawRepresentation && a.rawRepresentation.count == 32)
    }
}
