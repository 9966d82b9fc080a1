import SystemCrypto
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A signed update bundle: the root filesystem of a release, cut into blocks that are each
/// compressed on their own, so a box fetches (by byte range) only the blocks its slots do not
/// already hold, and the kernel and initramfs the slot boots with. The layout, in order:
///
///     junction-update/1\n                 the magic line
///     {manifest JSON}\n                   one line, at most `maxManifestBytes`
///     {base64 Ed25519 signature}\n        over "junction-update/1\n" + the manifest's bytes
///     index                               36 bytes a block: SHA-256 of the block, then a
///                                         little-endian UInt32: 0 = all zeros (nothing
///                                         stored), top bit set = stored raw (the low 31 bits
///                                         its length), otherwise zlib-compressed length
///     boot files                          each `manifest.boot[i].bytes` long, in order
///     block data                          the stored blocks, in order
///
/// The manifest's `index_sha256` binds the index, the index binds every block, the boot files
/// are bound by their SHA-256: the one signature covers every byte. Every number in the
/// manifest is bounded where it is decoded (`Bounds` below) and the layout's sums are checked
/// before anything is read past the header.
public struct UpdateBundle: Sendable, Equatable {
    public static let magic = "junction-update/1\n"
    public static let maxManifestBytes = 16 << 10
    public static let maxRootfsBytes: Int64 = 16 << 30
    public static let blockSizes = [4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1 << 20]
    public static let maxBootFileBytes: Int64 = 256 << 20
    public static let bootFileNames = ["vmlinuz", "initrd.img"]
    public static let maxNotes = 2000
    public static let indexEntryBytes = 36
    /// At most this many blocks: a 2 GiB root slot in 4 KiB blocks, an index of 18 MiB read into
    /// memory (the running slot's hashes beside it) on a 512 MB box.
    public static let maxBlocks = 1 << 19
    static let rawFlag: UInt32 = 0x8000_0000

    public struct Rootfs: Sendable, Equatable, Codable {
        public var bytes: Int64
        public var blockBytes: Int
        public var sha256: String
        public var indexSha256: String
        public var dataBytes: Int64
        enum CodingKeys: String, CodingKey {
            case bytes, sha256
            case blockBytes = "block_bytes", indexSha256 = "index_sha256", dataBytes = "data_bytes"
        }
        public var blocks: Int { Int((bytes + Int64(blockBytes) - 1) / Int64(blockBytes)) }
        public func length(ofBlock i: Int) -> Int { Int(min(Int64(blockBytes), bytes - Int64(i) * Int64(blockBytes))) }
    }

    public struct BootFile: Sendable, Equatable, Codable {
        public var name: String
        public var bytes: Int64
        public var sha256: String
    }

    public struct Manifest: Sendable, Equatable, Codable {
        public var format: Int = 1
        public var version: ReleaseVersion
        public var arch: String
        /// After installing this release the box never accepts one below this (a fix the fleet
        /// must not lose); at most `version`.
        public var minimumVersion: ReleaseVersion
        public var created: String
        public var notes: String?
        public var rootfs: Rootfs
        public var boot: [BootFile]
        enum CodingKeys: String, CodingKey {
            case format, version, arch, created, notes, rootfs, boot
            case minimumVersion = "minimum_version"
        }
    }

    public struct Block: Sendable, Equatable {
        public var sha256: [UInt8]
        /// Bytes stored for it in the data area (0 for an all-zero block).
        public var stored: Int
        public var raw: Bool
        public var zero: Bool { stored == 0 && !raw }
        /// Where its stored bytes start in the bundle.
        public var offset: Int64
    }

    public var manifest: Manifest
    /// The manifest's exact bytes as signed.
    public var manifestText: [UInt8]
    /// Fingerprint of the release key that signed it (`DeviceKey`'s definition: 16 hex digits of SHA-256 of the key).
    public var signedBy: String
    public var headerBytes: Int64
    public var blocks: [Block]

    public var indexOffset: Int64 { headerBytes }
    public var indexBytes: Int64 { Int64(blocks.count * Self.indexEntryBytes) }
    public func bootFileOffset(_ i: Int) -> Int64 {
        indexOffset + indexBytes + manifest.boot.prefix(i).reduce(0) { $0 + $1.bytes }
    }
    public var dataOffset: Int64 { bootFileOffset(manifest.boot.count) }
    public var totalBytes: Int64 { dataOffset + manifest.rootfs.dataBytes }

    // MARK: reading

    /// Reads and checks the header and the index through `read(offset, count)`, before anything
    /// else is fetched: the magic, the manifest's bounds, the signature against `keyring`, the
    /// layout's sums, the index's hash. `size` is the bundle's length when it is known.
    public static func open(size: Int64?, keyring: Keyring,
                            read: (Int64, Int) async throws -> [UInt8]) async throws -> UpdateBundle {
        let head = try await read(0, size.map { Int(min(Int64(headLimit), $0)) } ?? headLimit)
        let (manifest, manifestText, signature, headerBytes) = try header(head, size: size)
        let message = Array(magic.utf8) + manifestText
        guard let signer = keyring.signer(of: signature, message: message) else {
            throw UpdateError.untrusted(keyring.isEmpty ? "the keyring is empty" : "signature checked against \(keyring.fingerprints.joined(separator: ", "))")
        }
        let count = manifest.rootfs.blocks
        let index = try await read(headerBytes, count * indexEntryBytes)
        let blocks = try self.index(index, manifest: manifest, headerBytes: headerBytes)
        let bundle = UpdateBundle(manifest: manifest, manifestText: manifestText, signedBy: signer, headerBytes: headerBytes, blocks: blocks)
        if let size, size != bundle.totalBytes {
            if size < bundle.totalBytes { throw UpdateError.truncated(expected: bundle.totalBytes, got: size) }
            throw UpdateError.malformed("\(size - bundle.totalBytes) bytes follow the last block")
        }
        return bundle
    }

    /// The most of a bundle's start that its header can take.
    public static let headLimit = magic.utf8.count + maxManifestBytes + 200

    /// The magic, the manifest (bounds checked) and the signature line from the bundle's first
    /// bytes (`head`: at most `headLimit`, fewer only when the file is shorter).
    static func header(_ head: [UInt8], size: Int64?) throws -> (Manifest, [UInt8], String, Int64) {
        guard head.starts(with: Array(magic.utf8)) else {
            throw UpdateError.malformed(head.isEmpty ? "the file is empty" : "it does not start with \(magic.dropLast())")
        }
        var cursor = magic.utf8.count
        func line(_ what: String, max: Int) throws -> ArraySlice<UInt8> {
            guard let nl = head[cursor...].prefix(max + 1).firstIndex(of: 0x0a) else {
                if head.count < headLimit { throw UpdateError.truncated(expected: Int64(cursor + max), got: Int64(head.count)) }
                throw UpdateError.malformed("the \(what) line is longer than \(max) bytes")
            }
            defer { cursor = nl + 1 }
            return head[cursor..<nl]
        }
        let manifestText = Array(try line("manifest", max: maxManifestBytes))
        let signature = String(decoding: try line("signature", max: 120), as: UTF8.self)
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(manifestText)) } catch {
            throw UpdateError.malformed("the manifest cannot be read: \(Self.words(error))")
        }
        try check(manifest)
        return (manifest, manifestText, signature, Int64(cursor))
    }

    /// The blocks of a checked manifest from its index (bound by `index_sha256`).
    static func index(_ index: [UInt8], manifest: Manifest, headerBytes: Int64) throws -> [Block] {
        let count = manifest.rootfs.blocks
        guard index.count == count * indexEntryBytes else {
            throw UpdateError.truncated(expected: headerBytes + Int64(count * indexEntryBytes), got: headerBytes + Int64(index.count))
        }
        guard hex(SHA256.hash(data: index)) == manifest.rootfs.indexSha256 else {
            throw UpdateError.damaged("the block index does not match the signed manifest")
        }
        var blocks: [Block] = []
        blocks.reserveCapacity(count)
        let bootBytes = manifest.boot.reduce(Int64(0)) { $0 + $1.bytes }
        var offset = headerBytes + Int64(index.count) + bootBytes
        var stored: Int64 = 0
        for i in 0..<count {
            let base = i * indexEntryBytes
            let word = UInt32(index[base + 32]) | UInt32(index[base + 33]) << 8 | UInt32(index[base + 34]) << 16 | UInt32(index[base + 35]) << 24
            let raw = word & rawFlag != 0
            let length = Int(word & ~rawFlag)
            let blockLength = manifest.rootfs.length(ofBlock: i)
            if raw {
                guard length == blockLength else { throw UpdateError.malformed("block \(i) is stored raw with \(length) bytes, not its \(blockLength)") }
            } else {
                guard length <= blockLength else { throw UpdateError.malformed("block \(i) stores \(length) compressed bytes, more than the block's \(blockLength)") }
            }
            blocks.append(Block(sha256: Array(index[base..<base + 32]), stored: length, raw: raw, offset: offset))
            offset += Int64(length)
            stored += Int64(length)
        }
        guard stored == manifest.rootfs.dataBytes else {
            throw UpdateError.malformed("the index stores \(stored) bytes of blocks but the manifest says \(manifest.rootfs.dataBytes)")
        }
        return blocks
    }

    /// Every bound of the manifest, written down here and tested at the bound.
    static func check(_ m: Manifest) throws {
        guard m.format == 1 else { throw UpdateError.malformed("format \(m.format) is not 1: a newer junction is needed to read it") }
        guard ["amd64", "arm64"].contains(m.arch) else { throw UpdateError.malformed("arch '\(m.arch.prefix(20))' is neither amd64 nor arm64") }
        guard m.minimumVersion <= m.version else { throw UpdateError.malformed("minimum_version \(m.minimumVersion) is above version \(m.version)") }
        guard (m.notes?.count ?? 0) <= maxNotes else { throw UpdateError.malformed("notes are longer than \(maxNotes) characters") }
        guard m.created.utf8.count <= 40 else { throw UpdateError.malformed("created is not a time") }
        let r = m.rootfs
        guard blockSizes.contains(r.blockBytes) else { throw UpdateError.malformed("block_bytes \(r.blockBytes) is not a power of two from 4 KiB to 1 MiB") }
        guard r.bytes > 0, r.bytes <= maxRootfsBytes else { throw UpdateError.malformed("rootfs bytes \(r.bytes) is outside 1…\(maxRootfsBytes)") }
        guard r.blocks <= maxBlocks else { throw UpdateError.malformed("\(r.blocks) blocks is more than \(maxBlocks): use larger blocks") }
        guard r.dataBytes >= 0, r.dataBytes <= r.bytes + Int64(r.blocks) else { throw UpdateError.malformed("data_bytes \(r.dataBytes) is outside 0…\(r.bytes)") }
        for h in [r.sha256, r.indexSha256] where !isSHA256(h) { throw UpdateError.malformed("a hash is not 64 lower-case hex digits") }
        guard m.boot.count == bootFileNames.count, zip(m.boot, bootFileNames).allSatisfy({ $0.name == $1 }) else {
            throw UpdateError.malformed("boot files must be \(bootFileNames.joined(separator: " and ")), in that order")
        }
        for f in m.boot {
            guard f.bytes > 0, f.bytes <= maxBootFileBytes else { throw UpdateError.malformed("\(f.name) bytes \(f.bytes) is outside 1…\(maxBootFileBytes)") }
            guard isSHA256(f.sha256) else { throw UpdateError.malformed("\(f.name)'s hash is not 64 lower-case hex digits") }
        }
    }

    static func isSHA256(_ s: String) -> Bool { s.utf8.count == 64 && bytes(fromHex: s) != nil }

    static func words(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): c.debugDescription
        case DecodingError.keyNotFound(let k, _): "\(k.stringValue) is missing"
        case DecodingError.typeMismatch(_, let c): "\(c.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
        case DecodingError.valueNotFound(_, let c): "\(c.codingPath.map(\.stringValue).joined(separator: ".")) is null"
        default: "it is not JSON"
        }
    }
}
