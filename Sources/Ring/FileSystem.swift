import SystemCrypto
#if canImport(Glibc)
import Glibc
#endif

/// The few blocking file operations the ring needs, over Glibc. Callers run them off the
/// shared concurrency pool (on a `NIOThreadPool`).
public enum FileSystem {
    static func errnoText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

    /// Replaces `path` with `bytes` through a temporary file and a rename, so a reader (or a
    /// power cut) sees the old file or the new one, never half of one. `durable` also fsyncs the
    /// data before the rename (settings); status files that describe the moment skip it.
    public static func writeAtomically(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o644,
                                       durable: Bool = false) throws(RingError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw RingError(.storage, "cannot write: \(errnoText())", path: path) }
        let data = Array(bytes)
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + done, data.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        var synced = true
        if durable {
            while fsync(fd) != 0 { if errno != EINTR { synced = false; break } }
        }
        close(fd)
        guard synced else {
            let why = errnoText()
            unlink(tmp)
            throw RingError(.storage, "cannot make the file durable (fsync: \(why))", path: path)
        }
        guard done == data.count, rename(tmp, path) == 0 else {
            let why = errnoText()
            unlink(tmp)
            throw RingError(.storage, "cannot write: \(why)", path: path)
        }
        // The rename is durable only once the directory is: without this a power cut within the
        // filesystem's commit interval (60 s on the box's root) left only `path.tmp`.
        if durable { syncDirectory(parent(of: path)) }
    }

    /// mkdir -p; fsyncs each parent whose entries changed so a new directory survives a power cut.
    static func makeDirectories(_ path: String) throws(RingError) {
        var built = ""
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o755) == 0 {
                syncDirectory(parent(of: built))
            } else if errno != EEXIST {
                throw RingError(.storage, "cannot create the directory: \(errnoText())", path: built)
            }
        }
    }

    /// Moves a damaged file out of the ring into `quarantineRoot` (same filesystem: a rename,
    /// nothing copied or changed), under its relative path; a name already there gets a suffix.
    /// Returns the new path. A repair never truncates or deletes what it cannot vouch for.
    static func quarantine(_ absolute: String, relative: String, quarantineRoot: String) throws(RingError) -> String {
        var target = quarantineRoot + "/" + relative
        try makeDirectories(parent(of: target))
        var n = 1
        while exists(target) { n += 1; target = quarantineRoot + "/" + relative + ".\(n)" }
        guard rename(absolute, target) == 0 else {
            throw RingError(.storage, "cannot move the damaged file to quarantine: \(errnoText())", path: absolute)
        }
        syncDirectory(parent(of: target))
        syncDirectory(parent(of: absolute))
        return target
    }

    /// Appends one line and fdatasyncs it (the flag and upload journals).
    static func appendLine(_ line: String, to path: String) throws(RingError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw RingError(.storage, "cannot append: \(errnoText())", path: path) }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count, fdatasync(fd) == 0 else { throw RingError(.storage, "cannot append: \(errnoText())", path: path) }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let p = String(path[..<slash])
        return p.isEmpty ? "/" : p
    }

    /// `fdatasync` a file: its data on the card, or a storage error saying why not.
    static func syncFile(_ path: String) throws(RingError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RingError(.storage, "cannot open the segment to sync it: \(errnoText())", path: path) }
        defer { close(fd) }
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw RingError(.storage, "cannot make the segment durable: \(errnoText())", path: path) }
        }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        while fsync(fd) != 0 && errno == EINTR {}
        close(fd)
    }

    static func size(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Unlinks a file; a file already gone is not an error.
    static func remove(_ path: String) throws(RingError) {
        if unlink(path) != 0 && errno != ENOENT {
            throw RingError(.storage, "cannot delete: \(errnoText())", path: path)
        }
    }

    /// Cuts a file to `length` and makes the cut durable.
    static func truncate(_ path: String, to length: Int64) throws(RingError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RingError(.storage, "cannot open to repair: \(errnoText())", path: path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else { throw RingError(.storage, "cannot cut back: \(errnoText())", path: path) }
        while fsync(fd) != 0 {
            if errno != EINTR { throw RingError(.storage, "cannot sync: \(errnoText())", path: path) }
        }
    }

    /// SHA-256 of a file's bytes, hex.
    public static func sha256(_ path: String) throws(RingError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RingError(.storage, "cannot read: \(errnoText())", path: path) }
        defer { close(fd) }
        var hasher = SHA256()
        let chunk = 1 << 20
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf.baseAddress, chunk)
            if n < 0 { if errno == EINTR { continue }; throw RingError(.storage, "cannot read: \(errnoText())", path: path) }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        return hasher.finalize().map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
    }

    /// Every regular file below `root`, as paths relative to it, and the directories found.
    static func walk(_ root: String) -> (files: [String], directories: [String]) {
        var files: [String] = []
        var dirs: [String] = []
        func visit(_ rel: String) {
            let abs = rel.isEmpty ? root : root + "/" + rel
            guard let dir = opendir(abs) else { return }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name == "." || name == ".." { continue }
                let child = rel.isEmpty ? name : rel + "/" + name
                var st = stat()
                guard lstat(root + "/" + child, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    dirs.append(child)
                    visit(child)
                } else if (st.st_mode & S_IFMT) == S_IFREG {
                    files.append(child)
                }
            }
        }
        visit("")
        return (files.sorted(), dirs.sorted())
    }

    public struct Space: Sendable, Equatable {
        public var total: Int64
        public var available: Int64
    }

    /// Size and free space of the filesystem holding `path`.
    public static func space(_ path: String) -> Space? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return Space(total: Int64(s.f_blocks) * Int64(s.f_frsize), available: Int64(s.f_bavail) * Int64(s.f_frsize))
    }
}
