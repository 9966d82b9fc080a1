import SystemCrypto
import FoundationEssentials
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Hashes a segment's bytes as they are written, whole and piece by piece, with no second read:
/// a new piece starts at each top-level `moof` box, so piece 0 is the header (`ftyp`, `moov`)
/// and each further piece one fragment (`moof`, `mdat`). The recorder feeds it the bytes it
/// writes; a verifier feeds it the bytes of a file: both get the same pieces.
public struct PieceHasher: Sendable {
    public private(set) var bytes: Int64 = 0
    private var whole = SHA256()
    private var piece = SHA256()
    private var pieceBytes: Int64 = 0
    private var done: [String] = []
    /// Bytes of a top-level box header seen but not yet hashed into a piece (its type decides
    /// which piece it opens).
    private var pending: [UInt8] = []
    /// Bytes left in the current top-level box after its header; nil at a box boundary.
    private var remaining: Int64? = nil
    /// Set when a header makes no sense: the rest is hashed into the current piece.
    private var lost = false
    /// Pieces kept at most: past them the rest is hashed into the last piece, so a file of
    /// millions of 8-byte `moof` boxes costs a few hundred kB, not 22 times the file (issue 22).
    public let maxPieces: Int
    /// Set when the bytes held more pieces than `maxPieces`.
    public private(set) var overflowed = false

    public init(maxPieces: Int = ChainRecord.maxPieces) { self.maxPieces = max(1, maxPieces) }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        whole.update(bufferPointer: buffer)
        bytes += Int64(buffer.count)
        var offset = 0
        while offset < buffer.count {
            if lost {
                addToPiece(UnsafeRawBufferPointer(rebasing: buffer[offset...]))
                return
            }
            if let left = remaining, left > 0 {
                let n = Int(min(left, Int64(buffer.count - offset)))
                addToPiece(UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)]))
                offset += n
                remaining = left - Int64(n)
                if remaining == 0 { remaining = nil }
                continue
            }
            // At a box boundary: gather the header (8 bytes, or 16 with a 64-bit size).
            pending.append(buffer[offset])
            offset += 1
            guard pending.count >= 8 else { continue }
            let size32 = pending[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if size32 == 1 && pending.count < 16 { continue }
            let headerLength: Int64 = size32 == 1 ? 16 : 8
            let size: Int64
            if size32 == 1 {
                let large = pending[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                size = large > UInt64(Int64.max) ? -1 : Int64(large)
            } else if size32 == 0 {
                size = Int64.max  // to the end of the file
            } else {
                size = Int64(size32)
            }
            let isMoof = pending[4] == 0x6D && pending[5] == 0x6F && pending[6] == 0x6F && pending[7] == 0x66
            if isMoof && pieceBytes > 0 && size >= headerLength {
                if done.count + 1 < maxPieces { closePiece() } else { overflowed = true; lost = true }
            }
            let header = pending
            pending = []
            header.withUnsafeBytes { addToPiece($0) }
            if size < headerLength { lost = true } else { remaining = size == Int64.max ? Int64.max : size - headerLength }
            if remaining == 0 { remaining = nil }
        }
    }

    public mutating func update<D: ContiguousBytes>(_ data: D) {
        data.withUnsafeBytes { update($0) }
    }

    private mutating func addToPiece(_ b: UnsafeRawBufferPointer) {
        piece.update(bufferPointer: b)
        pieceBytes += Int64(b.count)
    }

    private mutating func closePiece() {
        done.append(hex(piece.finalize()))
        piece = SHA256()
        pieceBytes = 0
    }

    /// SHA-256 of every byte so far and of each piece (the last one included), in hex.
    public func finish() -> (sha256: String, pieces: [String]) {
        var copy = self
        if !copy.pending.isEmpty { copy.pending.withUnsafeBytes { copy.addToPiece($0) } }
        if copy.pieceBytes > 0 || copy.done.isEmpty { copy.closePiece() }
        return (hex(copy.whole.finalize()), copy.done)
    }

    /// The whole-file hasher as it stands, to go on hashing bytes written after these (the seal).
    public var wholeHasher: SHA256 { whole }

    public enum FileResult {
        case hashed(PieceHasher)
        case missing
        /// A folder, a FIFO, a device: never opened for reading (a FIFO would hang the verifier).
        case notAFile
        case short(size: Int64)
        case unreadable(String)
    }

    /// Reads `count` bytes of the plain file at `path` from its start through a hasher (a
    /// verifier, or recovery for a file the recorder did not finish), in 1 MiB reads.
    public static func hash(path: String, count: Int64, maxPieces: Int = ChainRecord.maxPieces) -> FileResult {
        // O_NONBLOCK: opening a FIFO does not wait for a writer; a plain file ignores it.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return errno == ENOENT ? .missing : .unreadable(String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .unreadable(String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .notAFile }
        guard Int64(st.st_size) >= count else { return .short(size: Int64(st.st_size)) }
        var hasher = PieceHasher(maxPieces: maxPieces)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var left = count
        while left > 0 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, Int(min(Int64($0.count), left))) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .unreadable(String(cString: strerror(errno))) }
            guard n > 0 else { return .short(size: count - left) }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            left -= Int64(n)
        }
        return .hashed(hasher)
    }

    /// The hasher of `count` bytes of `path`, or nil when they cannot all be read.
    public static func hash(path: String, count: Int64) -> PieceHasher? {
        if case .hashed(let h) = hash(path: path, count: count) { return h }
        return nil
    }
}
