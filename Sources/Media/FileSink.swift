import Dispatch
import Evidence
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of one segment file on their way to the card: written with `write(2)`, hashed
/// with SHA-256 as they pass (no second read), made durable with `fdatasync` on the file and
/// `fsync` on its directory. FFmpeg's AVIO writes here through `SegmentMuxer`'s callback.
///
/// Durability in two steps. While the segment is open, `syncInBackground(mark:)` (called by the
/// muxer after each whole fragment) has the bytes written so far `fdatasync`ed on a thread of
/// its own, so a power cut loses at most the fragment being written and the capture thread never
/// waits for the card; requests made while a sync runs are merged into the next one. `finish()`
/// syncs what is left, closes, and `fsync`s the directory.
final class FileSink: @unchecked Sendable {
    let path: String
    /// Owned; closed once, under `lifetime`, by `finish`, `abandon` or `deinit`.
    private let fd: Int32
    /// True once `fd` is closed. The sync thread holds it while it runs `fdatasync`, so `fd`
    /// is never closed (and its number reused) under it.
    private let lifetime = Mutex<Bool>(false)
    private let progress = Mutex<SyncProgress>(SyncProgress())
    /// The whole file's SHA-256 and each piece's (header, then fragment by fragment).
    private var hasher = PieceHasher()
    /// Written only by the writing thread.
    private(set) var bytes: Int64 = 0
    /// The first `errno` a write hit; later writes are refused.
    private(set) var failure: Int32 = 0

    struct SyncProgress {
        /// Bytes asked to be durable, and the caller's mark for them.
        var requested: Int64 = 0
        var requestedMark: Int64 = 0
        /// Bytes known durable (fdatasync returned after they were written), and their mark.
        var durable: Int64 = 0
        var durableMark: Int64?
        var running = false
        /// The directory entry of the new file is durable too (fsynced once, after the first
        /// fragment: POSIX does not promise that syncing a file syncs its name).
        var directorySynced = false
        /// The first errno fdatasync returned; `finish` reports it.
        var failure: Int32 = 0
    }

    /// One thread for every open segment's fragment syncs: they are short and never overlap
    /// by much (one camera per box).
    private static let syncQueue = DispatchQueue(label: "junction.fragment-sync", qos: .userInitiated)

    /// Creates the file (it must not exist: a name is never reused).
    init(path: String) throws(MediaError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let e = errno
            throw MediaError(code: e == ENOSPC || e == EDQUOT ? .storageFull : .storage, call: "open", status: nil, target: path,
                             message: "cannot create the segment file: \(String(cString: strerror(e)))")
        }
    }

    deinit {
        closeOnce(sync: false)
    }

    /// Bytes known to be on the card, and the mark given with them (nil: none yet).
    var durable: (bytes: Int64, mark: Int64?) {
        progress.withLock { ($0.durable, $0.durableMark) }
    }

    /// Has every byte written so far made durable soon, without waiting. `mark` (the muxer's
    /// media time of the end of those bytes) comes back through `durable` once they are.
    func syncInBackground(mark: Int64) {
        let target = bytes
        let start = progress.withLock { p -> Bool in
            guard target > p.requested else { return false }
            p.requested = target
            p.requestedMark = mark
            if p.running { return false }
            p.running = true
            return true
        }
        if start { Self.syncQueue.async { self.drainSyncs() } }
    }

    /// On the sync thread: fdatasync until no request is newer than what is durable.
    private func drainSyncs() {
        while true {
            let next = progress.withLock { p -> (Int64, Int64, Bool)? in
                guard p.requested > p.durable, p.failure == 0 else { p.running = false; return nil }
                return (p.requested, p.requestedMark, p.directorySynced)
            }
            guard let (target, mark, directorySynced) = next else { return }
            var result = lifetime.withLock { closed -> Int32? in
                closed ? nil : Self.retryingEINTR { fdatasync(fd) }
            }
            if result == 0 && !directorySynced {
                do { try Self.syncDirectory(of: path) } catch { result = EIO }
                progress.withLock { $0.directorySynced = true }
            }
            progress.withLock { p in
                switch result {
                case nil: p.running = false  // closed: finish() made it durable, or it was abandoned
                case 0?:
                    p.durable = max(p.durable, target)
                    p.durableMark = mark
                case let e?: p.failure = e
                }
            }
            if result == nil { return }
        }
    }

    /// Writes all of `buffer`, retrying on EINTR and short writes. Returns 0 or a negative errno.
    func write(_ buffer: UnsafeRawBufferPointer) -> Int32 {
        guard failure == 0 else { return -failure }
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                return -failure
            }
            offset += n
        }
        hasher.update(buffer)
        bytes += Int64(buffer.count)
        return 0
    }

    /// `fdatasync` the file, close it, `fsync` its directory: after this the file survives a
    /// power cut. Returns what was hashed on the way: every byte, and each piece. With `sync`
    /// false the file is closed unsynced (its fragments already synced stay so): the caller
    /// appends to it and makes the whole durable with one `fdatasync` (the ring's seal, issue 13:
    /// one journal commit per segment instead of two).
    func finish(sync: Bool = true) throws(MediaError) -> PieceHasher {
        if failure != 0 { closeOnce(sync: false); throw storageError("write", failure) }
        if let e = progress.withLock({ $0.failure == 0 ? nil : $0.failure }) {
            closeOnce(sync: false)
            throw storageError("fdatasync", e)
        }
        let e = closeOnce(sync: sync)
        if e != 0 { throw storageError("fdatasync", e) }
        guard sync else { return hasher }
        progress.withLock { p in
            p.durable = bytes
        }
        try Self.syncDirectory(of: path)
        return hasher
    }

    /// Closes without making anything more durable (the segment is abandoned; recovery repairs it).
    func abandon() {
        closeOnce(sync: false)
    }

    /// Closes `fd` if it is still open, after `fdatasync` when asked. Returns 0 or the errno of
    /// fdatasync. Waits for a sync running on the sync thread.
    @discardableResult
    private func closeOnce(sync: Bool) -> Int32 {
        lifetime.withLock { closed -> Int32 in
            guard !closed else { return 0 }
            closed = true
            guard fd >= 0 else { return 0 }
            let e = sync ? Self.retryingEINTR { fdatasync(fd) } : 0
            close(fd)
            return e
        }
    }

    /// Runs a call that returns 0 or -1 with errno until it is not interrupted; 0 or the errno.
    private static func retryingEINTR(_ call: () -> Int32) -> Int32 {
        while call() != 0 {
            if errno != EINTR { return errno }
        }
        return 0
    }

    static func syncDirectory(of path: String) throws(MediaError) {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return }
        defer { close(dfd) }
        while fsync(dfd) != 0 {
            if errno != EINTR { throw MediaError(code: .storage, call: "fsync", target: dir, message: "cannot sync the directory: \(String(cString: strerror(errno)))") }
        }
    }

    private func storageError(_ call: String, _ e: Int32) -> MediaError {
        MediaError(code: e == ENOSPC || e == EDQUOT ? .storageFull : .storage, call: call, target: path,
                   message: e == ENOSPC || e == EDQUOT ? "the data filesystem is full" : "writing the segment failed: \(String(cString: strerror(e)))")
    }
}
