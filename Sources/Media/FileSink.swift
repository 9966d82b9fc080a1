import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of one segment file on their way to the card: written with `write(2)`, hashed
/// with SHA-256 as they pass (no second read), made durable with `fdatasync` on the file and
/// `fsync` on its directory. FFmpeg's AVIO writes here through `SegmentMuxer`'s callback.
final class FileSink {
    let path: String
    private var fd: Int32
    private var hasher = SHA256()
    private(set) var bytes: Int64 = 0
    /// The first `errno` a write hit; later writes are refused.
    private(set) var failure: Int32 = 0

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
        if fd >= 0 { close(fd) }
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
        hasher.update(bufferPointer: buffer)
        bytes += Int64(buffer.count)
        return 0
    }

    /// `fdatasync` the file, close it, `fsync` its directory: after this the file survives a
    /// power cut. Returns the SHA-256 of every byte written, in hex.
    func finish() throws(MediaError) -> String {
        if failure != 0 { throw storageError("write", failure) }
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw storageError("fdatasync", errno) }
        }
        close(fd)
        fd = -1
        try Self.syncDirectory(of: path)
        return hasher.finalize().map { byteHex($0) }.joined()
    }

    /// Closes without making anything durable (the segment is abandoned; recovery repairs it).
    func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
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

@inline(__always)
func byteHex(_ b: UInt8) -> String {
    let digits: [Character] = ["0","1","2","3","4","5","6","7","8","9","a","b","c","d","e","f"]
    return String([digits[Int(b >> 4)], digits[Int(b & 0xf)]])
}
