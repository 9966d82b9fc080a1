import CJunctionSys
#if canImport(Glibc)
import Glibc
#endif

/// A file or block device read and written at offsets (a slot, a rootfs image, a bundle on
/// disk), with errno's words in every error.
final class BlockFile: @unchecked Sendable {
    let fd: Int32
    let path: String

    init(path: String, writable: Bool = false, create: Bool = false) throws(UpdateError) {
        let flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | (create ? O_CREAT : 0)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Bytes in it: a block device's size too (lseek to the end).
    func size() throws(UpdateError) -> Int64 {
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw .io("cannot size \(path): \(String(cString: strerror(errno)))") }
        return Int64(end)
    }

    /// Up to `count` bytes at `offset` (fewer only at the end).
    func read(_ offset: Int64, _ count: Int) throws(UpdateError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw .io("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            done += n
        }
        out.removeLast(count - done)
        return out
    }

    func write(_ bytes: [UInt8], at offset: Int64) throws(UpdateError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io("cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    func sync() throws(UpdateError) {
        guard fsync(fd) == 0 else { throw .io("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    func truncate(_ size: Int64) throws(UpdateError) {
        guard ftruncate(fd, off_t(size)) == 0 else { throw .io("cannot size \(path): \(String(cString: strerror(errno)))") }
    }
}

/// zlib for single blocks: the bundle compresses each on its own so any one can be fetched alone.
enum BlockCodec {
    /// The compressed form, or nil when it would not be smaller.
    static func compress(_ block: [UInt8]) -> [UInt8]? {
        var length = compressBound(uLong(block.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let rc = out.withUnsafeMutableBufferPointer { o in
            block.withUnsafeBufferPointer { i in compress2(o.baseAddress, &length, i.baseAddress, uLong(block.count), 9) }
        }
        guard rc == Z_OK, Int(length) < block.count else { return nil }
        out.removeLast(out.count - Int(length))
        return out
    }

    /// Exactly `length` bytes from `stored`, or nil when it is not a zlib stream of that length.
    static func expand(_ stored: ArraySlice<UInt8>, length: Int) -> [UInt8]? {
        var got = uLong(length)
        var out = [UInt8](repeating: 0, count: length)
        let rc = out.withUnsafeMutableBufferPointer { o in
            stored.withUnsafeBufferPointer { i in uncompress(o.baseAddress, &got, i.baseAddress, uLong(stored.count)) }
        }
        guard rc == Z_OK, Int(got) == length else { return nil }
        return out
    }
}

/// A bundle on local storage (a USB stick, a finished download), read by range.
public final class LocalBundle: Sendable {
    let file: BlockFile
    public let size: Int64

    public init(path: String) throws(UpdateError) {
        file = try BlockFile(path: path)
        size = try file.size()
    }

    public var fetch: SlotWriter.Fetch {
        { [file] offset, count in try file.read(offset, count) }
    }
}
