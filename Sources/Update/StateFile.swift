#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Root's small JSON files on the data partition (update state, settings state, the offers the
/// daemon hands on): read bounded and never through a link; written through a temporary file,
/// fsync, a rename and a directory sync, so a power cut leaves the old file or the new one.
public enum StateFile {
    /// Bound (README, "Limits"): no state or offer is near it.
    public static let maxBytes = 64 << 10

    /// The file's bytes; nil when it is not there. Over `maxBytes`, or a link: an error.
    public static func read(path: String, limit: Int = maxBytes) throws(UpdateError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .io("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var got = 0
        while got < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            got += n
        }
        guard got <= limit else { throw .malformed("\(path) is over \(limit / 1024) KiB") }
        return Array(bytes[0..<got])
    }

    /// Decodes the file (nil when it is not there).
    public static func decode<T: Decodable>(_ type: T.Type, path: String, what: String) throws(UpdateError) -> T? {
        guard let bytes = try read(path: path) else { return nil }
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw .malformed("\(path) is not \(what): \(error)")
        }
    }

    public static func write<T: Encodable>(_ value: T, to path: String, what: String) throws(UpdateError) {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch { throw .io("cannot make \(dir)") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? encoder.encode(value) else { throw .io("cannot encode \(what)") }
        let tmp = path + ".partial"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw .io("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let bytes = Array(data)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, bytes.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard n == bytes.count, synced, rename(tmp, path) == 0 else { throw .io("cannot write \(path): \(String(cString: strerror(errno)))") }
        try syncDirectory(of: path)
    }
}
