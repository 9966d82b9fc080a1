import SystemCrypto
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Makes a bundle (`junction update pack`): the release's root
/// filesystem image cut into blocks, each compressed alone (or kept raw when that is not
/// smaller, or not stored at all when it is zeros), the kernel and initramfs, and the signed
/// manifest. Written to `out.partial` and renamed, so a bundle that exists is whole.
public enum BundleWriter {
    public struct Input: Sendable {
        public var rootfs: String
        public var kernel: String
        public var initrd: String
        public var version: ReleaseVersion
        public var minimumVersion: ReleaseVersion
        public var arch: String
        public var notes: String?
        /// The file system's own block size: a file that moves by a few blocks between releases
        /// still matches block for block (at 64 KiB, 99.8 % of a release that changed one
        /// program was fetched again; at 4 KiB, 31 %: make bench-update).
        public var blockBytes = 4096
        public var created: Timestamp = .now()
        public init(rootfs: String, kernel: String, initrd: String, version: ReleaseVersion, minimumVersion: ReleaseVersion? = nil, arch: String) {
            self.rootfs = rootfs
            self.kernel = kernel
            self.initrd = initrd
            self.version = version
            self.minimumVersion = minimumVersion ?? version
            self.arch = arch
        }
    }

    public struct Summary: Sendable {
        public var manifest: UpdateBundle.Manifest
        public var bytes: Int64
        public var zeroBlocks: Int
        public var rawBlocks: Int
    }

    public static func write(_ input: Input, key: ReleaseKey, to out: String) throws -> Summary {
        let image = try BlockFile(path: input.rootfs)
        let size = try image.size()
        guard size > 0 else { throw UpdateError.malformed("\(input.rootfs) is empty") }
        let blockBytes = input.blockBytes
        let count = Int((size + Int64(blockBytes) - 1) / Int64(blockBytes))
        let dataPath = out + ".data.partial"
        let data = try BlockFile(path: dataPath, writable: true, create: true)
        defer { unlink(dataPath) }
        try data.truncate(0)
        var index: [UInt8] = []
        index.reserveCapacity(count * UpdateBundle.indexEntryBytes)
        var whole = SHA256()
        var stored: Int64 = 0, zeros = 0, raws = 0
        for i in 0..<count {
            let block = try image.read(Int64(i) * Int64(blockBytes), blockBytes)
            whole.update(data: block)
            index += Array(SHA256.hash(data: block))
            var word: UInt32
            if block.allSatisfy({ $0 == 0 }) {
                word = 0
                zeros += 1
            } else if let packed = BlockCodec.compress(block) {
                try data.write(packed, at: stored)
                stored += Int64(packed.count)
                word = UInt32(packed.count)
            } else {
                try data.write(block, at: stored)
                stored += Int64(block.count)
                word = UpdateBundle.rawFlag | UInt32(block.count)
                raws += 1
            }
            index += [UInt8(word & 0xff), UInt8(word >> 8 & 0xff), UInt8(word >> 16 & 0xff), UInt8(word >> 24)]
        }
        var boot: [UpdateBundle.BootFile] = []
        var bootBytes: [[UInt8]] = []
        for (name, path) in zip(UpdateBundle.bootFileNames, [input.kernel, input.initrd]) {
            guard let bytes = FileManager.default.contents(atPath: path) else { throw UpdateError.io("cannot read \(path)") }
            boot.append(.init(name: name, bytes: Int64(bytes.count), sha256: hex(SHA256.hash(data: bytes))))
            bootBytes.append(Array(bytes))
        }
        let manifest = UpdateBundle.Manifest(
            version: input.version, arch: input.arch, minimumVersion: input.minimumVersion, created: input.created.rfc3339, notes: input.notes,
            rootfs: .init(bytes: size, blockBytes: blockBytes, sha256: hex(whole.finalize()), indexSha256: hex(SHA256.hash(data: index)), dataBytes: stored),
            boot: boot)
        try UpdateBundle.check(manifest)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = Array(try encoder.encode(manifest))
        guard text.count <= UpdateBundle.maxManifestBytes else { throw UpdateError.malformed("the manifest is longer than \(UpdateBundle.maxManifestBytes) bytes") }
        let magic = Array(UpdateBundle.magic.utf8)
        let signature = try key.sign(magic + text)
        let partial = out + ".partial"
        let file = try BlockFile(path: partial, writable: true, create: true)
        try file.truncate(0)
        var at: Int64 = 0
        func append(_ bytes: [UInt8]) throws {
            try file.write(bytes, at: at)
            at += Int64(bytes.count)
        }
        try append(magic + text + [0x0a] + Array(signature.utf8) + [0x0a])
        try append(index)
        for b in bootBytes { try append(b) }
        var copied: Int64 = 0
        while copied < stored {
            let chunk = try data.read(copied, Int(min(Int64(4 << 20), stored - copied)))
            try append(chunk)
            copied += Int64(chunk.count)
        }
        try file.sync()
        guard rename(partial, out) == 0 else { throw UpdateError.io("cannot rename \(partial): \(String(cString: strerror(errno)))") }
        return Summary(manifest: manifest, bytes: at, zeroBlocks: zeros, rawBlocks: raws)
    }
}
