internal import CLibCrypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// SHA-256, SHA-1 and Ed25519 from the system's libcrypto (OpenSSL 3), in the shapes the code
/// used from swift-crypto: the box needs only these three, and swift-crypto brought a second
/// BoringSSL (about 3.5 MB) beside swift-nio-ssl's (issue 25). Every image has libcrypto
/// already (openssh-server, FFmpeg's network stack); the commune's Debian too.
///
/// A digest: its bytes, in order.
public struct Digest: Sequence, Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public func makeIterator() -> IndexingIterator<[UInt8]> { bytes.makeIterator() }
    public var underestimatedCount: Int { bytes.count }
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try bytes.withUnsafeBytes(body) }
    /// Lowercase hex.
    public var description: String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

/// A hash being computed, with value semantics: a copy goes on alone (libcrypto's context is
/// copied the first time one of them changes).
public protocol HashFunction: Sendable {
    init()
    mutating func update(bufferPointer: UnsafeRawBufferPointer)
    /// The digest of what was given so far; the hash can go on after it.
    func finalize() -> Digest
}

extension HashFunction {
    public mutating func update<D: DataProtocol>(data: D) {
        for region in data.regions { region.withUnsafeBytes { update(bufferPointer: $0) } }
    }

    public static func hash<D: DataProtocol>(data: D) -> Digest {
        var h = Self()
        h.update(data: data)
        return h.finalize()
    }
}

/// libcrypto's digest context, shared by copies until one of them changes.
final class DigestContext: @unchecked Sendable {
    let ctx: OpaquePointer

    init(_ md: OpaquePointer?) {
        guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, md, nil) == 1 else {
            fatalError("libcrypto cannot start a digest (out of memory)")
        }
        ctx = c
    }

    init(copying other: DigestContext) {
        guard let c = EVP_MD_CTX_new(), EVP_MD_CTX_copy_ex(c, other.ctx) == 1 else {
            fatalError("libcrypto cannot copy a digest (out of memory)")
        }
        ctx = c
    }

    deinit { EVP_MD_CTX_free(ctx) }
}

/// The running state behind each hash type.
struct DigestState: Sendable {
    private var context: DigestContext

    init(_ md: OpaquePointer?) { context = DigestContext(md) }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if !isKnownUniquelyReferenced(&context) { context = DigestContext(copying: context) }
        _ = EVP_DigestUpdate(context.ctx, bytes.baseAddress, bytes.count)
    }

    func finalize(size: Int) -> Digest {
        let done = DigestContext(copying: context)
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(done.ctx, &out, &length)
        precondition(Int(length) == size, "libcrypto gave a digest of \(length) bytes, not \(size)")
        return Digest(bytes: Array(out.prefix(size)))
    }
}

public struct SHA256: HashFunction {
    public static let byteCount = 32
    private var state = DigestState(EVP_sha256())
    public init() {}
    public mutating func update(bufferPointer: UnsafeRawBufferPointer) { state.update(bufferPointer) }
    public func finalize() -> Digest { state.finalize(size: Self.byteCount) }
}

public enum Insecure {
    /// Only for tus's `Upload-Checksum: sha1`, which some servers take and not sha256.
    public struct SHA1: HashFunction {
        public static let byteCount = 20
        private var state = DigestState(EVP_sha1())
        public init() {}
        public mutating func update(bufferPointer: UnsafeRawBufferPointer) { state.update(bufferPointer) }
        public func finalize() -> Digest { state.finalize(size: Self.byteCount) }
    }
}
