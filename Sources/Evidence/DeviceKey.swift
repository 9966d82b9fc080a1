import SystemCrypto
import FoundationEssentials
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The box's Ed25519 key pair, made on first start and kept beside the footage it signs
/// (`<storage>/keys/device.ed25519`, 0600 in a 0700 directory, written atomically): a card that
/// is re-flashed loses both together, and such a box is re-enrolled at the commune
/// (`commune devices rekey`). The file is one line, `junction-device-key/1 <base64 seed>`.
public struct DeviceKey: Sendable {
    let key: Curve25519.Signing.PrivateKey

    public init(_ key: Curve25519.Signing.PrivateKey) { self.key = key }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }
    /// The public key as the box shows it and the commune stores it: base64 of its 32 bytes.
    public var publicKeyBase64: String { key.publicKey.rawRepresentation.base64EncodedString() }
    /// A short form to read aloud over the phone: the first 16 hex digits of SHA-256(public key).
    public var fingerprint: String { Self.fingerprint(of: key.publicKey) }

    public static func fingerprint(of publicKey: Curve25519.Signing.PublicKey) -> String {
        String(hex(SHA256.hash(data: publicKey.rawRepresentation)).prefix(16))
    }

    /// A public key from its base64 form, or nil.
    public static func publicKey(base64: String) -> Curve25519.Signing.PublicKey? {
        guard base64.utf8.count <= 100, let raw = Data(base64Encoded: base64), raw.count == 32 else { return nil }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    /// True when `signature` (base64, standard alphabet with padding, 64 bytes) is `key`'s over `message`.
    public static func isValid<M: DataProtocol>(signature: String, of message: M, by key: Curve25519.Signing.PublicKey) -> Bool {
        guard signature.utf8.count <= 200, let sig = Data(base64Encoded: signature), sig.count == 64 else { return false }
        return key.isValidSignature(sig, for: Data(message))
    }

    /// Reads a private key written by `loadOrCreate`, never making one.
    public static func load(path: String) throws(ChainError) -> DeviceKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .badKey(FileManager.default.fileExists(atPath: path) ? "\(path) cannot be read (run as root, or as the junction user)" : "there is no key at \(path)")
        }
        return try parse(data, path: path)
    }

    func sign(_ message: Data) throws(ChainError) -> Data {
        do { return try key.signature(for: message) } catch { throw .badKey("cannot sign: \(error)") }
    }

    static let header = "junction-device-key/1 "

    /// Writes the public key where anyone may read it (0644, outside the private key's 0700
    /// directory), so `junction status` and `doctor` show it without reading the private key.
    public func writePublic(to pub: String) throws(ChainError) {
        let line = publicKeyBase64 + "\n"
        if let old = FileManager.default.contents(atPath: pub), String(decoding: old, as: UTF8.self) == line { return }
        do { try Data(line.utf8).write(to: URL(fileURLWithPath: pub), options: .atomic) } catch {
            throw .storage("cannot write \(pub): \(error)")
        }
    }

    /// The public key written by `writePublic`, or nil.
    public static func readPublic(at path: String) -> Curve25519.Signing.PublicKey? {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 200 else { return nil }
        return publicKey(base64: String(decoding: data, as: UTF8.self).trimmingSpaces)
    }

    /// Reads the key at `path`; when there is none, makes one and writes it there (directory
    /// 0700, file 0600, fsynced, renamed into place). A file that is there but unreadable is
    /// an error: a key is never silently replaced.
    public static func loadOrCreate(path: String) throws(ChainError) -> (key: DeviceKey, created: Bool) {
        if let data = FileManager.default.contents(atPath: path) {
            return (try parse(data, path: path), false)
        }
        guard !FileManager.default.fileExists(atPath: path) else { throw .badKey("\(path) exists but cannot be read") }
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        try write(key, to: path)
        return (key, true)
    }

    static func parse(_ data: Data, path: String) throws(ChainError) -> DeviceKey {
        guard data.count <= 200, let text = String(data: data, encoding: .utf8), text.hasPrefix(header),
              let seed = Data(base64Encoded: text.dropFirst(header.count).trimmingSpaces), seed.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else { throw .badKey("\(path) is not a Junction device key (\(data.count) bytes)") }
        return DeviceKey(key)
    }

    static func write(_ key: DeviceKey, to path: String) throws(ChainError) {
        let dir = path.parentPath
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw .storage("cannot make \(dir): \(String(cString: strerror(errno)))") }
        let temporary = path + ".partial"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .storage("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let line = Array((header + key.key.rawRepresentation.base64EncodedString() + "\n").utf8)
        let written = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == line.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw .storage("cannot write the device key at \(path): \(String(cString: strerror(errno)))")
        }
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}
