#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Reading a config file (junction.toml, commune.toml) as a person saved it: every way it can
/// fail says what to do. Bounds (README, "Limits"): at most `maxBytes`; UTF-8 only (a UTF-8
/// byte-order mark, as Notepad writes, is accepted and dropped).
public enum ConfigFile {
    public static let maxBytes = 1 << 20
    static let tooLarge = "the file is over 1 MB, far more than any config needs: is it the right file?"

    public static func read(path: String) throws(ConfigError) -> String {
        func fail(_ message: String) -> ConfigError {
            ConfigError(file: path, line: nil, key: nil, message: message)
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            if e == ENOENT {
                throw fail("there is no file here. Check the path given to --config; the image keeps it on the JUNCTION partition as junction.toml.")
            }
            throw fail("cannot read it (\(String(cString: strerror(e)))). Check the path and its permissions.")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw fail("is a folder, not a file: give the path of the config file itself, e.g. \(path.hasSuffix("/") ? path : path + "/")junction.toml")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw fail("is not a regular file: give the path of the config file") }
        guard st.st_size <= maxBytes else { throw fail(tooLarge) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot read it (\(String(cString: strerror(errno)))). Check its permissions.") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 { if errno == EINTR { continue }; throw fail("cannot read it (\(String(cString: strerror(errno))))") }
            if n == 0 { break }
            count += n
        }
        guard count <= maxBytes else { throw fail(tooLarge) }
        return try decode(Array(bytes[..<count]), file: path)
    }

    /// The text of `bytes`, or an error naming the line and byte that are not UTF-8.
    public static func decode(_ bytes: [UInt8], file: String) throws(ConfigError) -> String {
        var bytes = bytes[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        let saveAs = "Save the file as UTF-8 (Notepad: File, Save As, Encoding: UTF-8; TextEdit: Plain Text, UTF-8)."
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) || bytes.prefix(64).contains(0) {
            throw ConfigError(file: file, line: 1, key: nil, message: "the file is saved as UTF-16 (\"Unicode\"), not UTF-8. \(saveAs)")
        }
        var line = 1, column = 1
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = bytes.startIndex
        while true {
            let before = offset
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
                if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput:
                return String(decoding: bytes, as: UTF8.self)
            case .error:
                let b = bytes[before]
                throw ConfigError(file: file, line: line, key: nil, message: "character \(column) (byte 0x\(String(b, radix: 16, uppercase: true))) is not UTF-8 text: the file was saved in another encoding (Notepad's \"ANSI\"?). \(saveAs)")
            }
        }
    }
}
