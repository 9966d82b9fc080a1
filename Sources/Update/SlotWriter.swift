import SystemCrypto
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Writes a bundle's root filesystem into the slot that is not running, fetching only what
/// neither slot already holds:
///
/// 1. the target slot's blocks that already match are kept (an install cut off by a power cut
///    goes on from where it was, without fetching again);
/// 2. zero blocks are written as zeros; blocks the running slot holds (anywhere in it, by
///    SHA-256) are copied from it;
/// 3. the rest are fetched by byte range, several consecutive blocks a request (at most
///    `maxRequestBytes`), each expanded and checked against the signed index before it is
///    written; a block that does not match is never written;
/// 4. the slot is synced and read back whole against the manifest's SHA-256.
///
/// `pace(bytes)` is awaited before every request, so the caller holds updates behind flagged
/// footage; `checkpoint(blocksDone)` is called after each write (tests stop there to model a
/// power cut).
public enum SlotWriter {
    public struct Report: Sendable, Equatable {
        public var blocks = 0
        public var kept = 0
        public var zero = 0
        public var copied = 0
        public var fetched = 0
        public var fetchedBytes: Int64 = 0
        public var requests = 0
        public init() {}
    }

    public typealias Fetch = @Sendable (Int64, Int) async throws -> [UInt8]

    public static func write(_ bundle: UpdateBundle, fetch: Fetch, target: String, current: String?,
                             maxRequestBytes: Int = 4 << 20,
                             pace: @Sendable (Int) async throws -> Void = { _ in },
                             checkpoint: (Int) throws -> Void = { _ in }) async throws -> Report {
        let r = bundle.manifest.rootfs
        let slot = try BlockFile(path: target, writable: true)
        var st = stat()
        guard fstat(slot.fd, &st) == 0 else { throw UpdateError.io("cannot stat \(target)") }
        let isDevice = (st.st_mode & S_IFMT) == S_IFBLK
        let room = try slot.size()
        if isDevice {
            guard room >= r.bytes else { throw UpdateError.slot("\(target) holds \(room) bytes and the release needs \(r.bytes): the card's slots are too small for it") }
        } else if room != r.bytes {
            try slot.truncate(r.bytes)
        }
        var report = Report()
        report.blocks = bundle.blocks.count
        var needed: [Int] = []
        for (i, block) in bundle.blocks.enumerated() {
            let have = try slot.read(Int64(i) * Int64(r.blockBytes), r.length(ofBlock: i))
            if Array(SHA256.hash(data: have)) == block.sha256 { report.kept += 1 } else { needed.append(i) }
        }
        // What the running slot holds, by hash (only when something is still needed).
        var local: [[UInt8]: Int64] = [:]
        var source: BlockFile?
        if !needed.isEmpty, let current, let file = try? BlockFile(path: current) {
            source = file
            let wanted = Set(needed.map { bundle.blocks[$0].sha256 })
            let size = try file.size()
            var at: Int64 = 0
            while at < size {
                let b = try file.read(at, Int(min(Int64(r.blockBytes), size - at)))
                let h = Array(SHA256.hash(data: b))
                if wanted.contains(h), local[h] == nil { local[h] = at }
                at += Int64(r.blockBytes)
            }
        }
        var remote: [Int] = []
        var done = report.kept
        for i in needed {
            let block = bundle.blocks[i]
            let at = Int64(i) * Int64(r.blockBytes)
            if block.zero {
                let zeros = [UInt8](repeating: 0, count: r.length(ofBlock: i))
                guard Array(SHA256.hash(data: zeros)) == block.sha256 else { throw UpdateError.damaged("block \(i) is marked zero but its hash is not") }
                try slot.write(zeros, at: at)
                report.zero += 1
            } else if let from = local[block.sha256], let source,
                      case let bytes = try source.read(from, r.length(ofBlock: i)), Array(SHA256.hash(data: bytes)) == block.sha256 {
                try slot.write(bytes, at: at)
                report.copied += 1
            } else {
                remote.append(i)
                continue
            }
            done += 1
            try checkpoint(done)
        }
        // Runs of blocks whose stored bytes are contiguous, fetched a run a request.
        var k = 0
        while k < remote.count {
            var end = k + 1
            var bytes = bundle.blocks[remote[k]].stored
            while end < remote.count, remote[end] == remote[end - 1] + 1, bytes + bundle.blocks[remote[end]].stored <= maxRequestBytes {
                bytes += bundle.blocks[remote[end]].stored
                end += 1
            }
            let first = bundle.blocks[remote[k]]
            try await pace(bytes)
            let got = try await fetch(first.offset, bytes)
            report.requests += 1
            report.fetchedBytes += Int64(got.count)
            guard got.count == bytes else { throw UpdateError.truncated(expected: first.offset + Int64(bytes), got: first.offset + Int64(got.count)) }
            var cursor = 0
            for i in remote[k..<end] {
                let block = bundle.blocks[i]
                let stored = got[cursor..<cursor + block.stored]
                cursor += block.stored
                let length = r.length(ofBlock: i)
                guard let plain = block.raw ? Array(stored) : BlockCodec.expand(stored, length: length),
                      Array(SHA256.hash(data: plain)) == block.sha256 else {
                    throw UpdateError.damaged("block \(i) does not match the signed index (the download or the server is damaged)")
                }
                try slot.write(plain, at: Int64(i) * Int64(r.blockBytes))
                report.fetched += 1
                done += 1
                try checkpoint(done)
            }
            k = end
        }
        try slot.sync()
        var whole = SHA256()
        var at: Int64 = 0
        while at < r.bytes {
            let b = try slot.read(at, Int(min(Int64(4 << 20), r.bytes - at)))
            guard !b.isEmpty else { break }
            whole.update(data: b)
            at += Int64(b.count)
        }
        guard hex(whole.finalize()) == r.sha256 else {
            throw UpdateError.damaged("\(target) does not read back as the release (the card may be failing)")
        }
        return report
    }

    /// Fetches boot file `i` whole (in requests of at most `maxRequestBytes`), checks its hash
    /// and writes it to `path` through a temporary file and a rename, synced.
    public static func writeBootFile(_ bundle: UpdateBundle, _ i: Int, fetch: Fetch, to path: String,
                                     maxRequestBytes: Int = 4 << 20, pace: @Sendable (Int) async throws -> Void = { _ in }) async throws -> Int64 {
        let f = bundle.manifest.boot[i]
        let start = bundle.bootFileOffset(i)
        let tmp = path + ".partial"
        let out = try BlockFile(path: tmp, writable: true, create: true)
        try out.truncate(0)
        var hash = SHA256()
        var at: Int64 = 0
        while at < f.bytes {
            let n = Int(min(Int64(maxRequestBytes), f.bytes - at))
            try await pace(n)
            let got = try await fetch(start + at, n)
            guard got.count == n else { throw UpdateError.truncated(expected: start + at + Int64(n), got: start + at + Int64(got.count)) }
            hash.update(data: got)
            try out.write(got, at: at)
            at += Int64(n)
        }
        guard hex(hash.finalize()) == f.sha256 else {
            unlink(tmp)
            throw UpdateError.damaged("\(f.name) does not match the signed manifest")
        }
        try out.sync()
        guard rename(tmp, path) == 0 else { throw UpdateError.io("cannot rename \(tmp): \(String(cString: strerror(errno)))") }
        try syncDirectory(of: path)
        return at
    }
}

/// fsync of the directory that holds `path`, so a rename in it survives a power cut.
func syncDirectory(of path: String) throws(UpdateError) {
    let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw .io("cannot open \(dir): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    // FAT (the boot partition) answers EINVAL to a directory fsync: its metadata went with the file's.
    guard fsync(fd) == 0 || errno == EINVAL else { throw .io("cannot sync \(dir): \(String(cString: strerror(errno)))") }
}
