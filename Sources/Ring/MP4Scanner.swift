import Evidence
#if canImport(Glibc)
import Glibc
#endif

/// Reads the box structure of a fragmented-MP4 segment without FFmpeg: enough to find the last
/// whole fragment of a torn file, the media duration, and the facts the recorder stored in the
/// file's metadata. Used by recovery, `check` and `reindex`.
///
/// A segment is `ftyp`, `moov` (with the comment `junction/1 ...`), then `moof`+`mdat` pairs.
/// A fragment is whole when its `mdat` ends inside the file.
public struct MP4Scan: Sendable, Equatable {
    /// Bytes up to the end of the last whole fragment (the file may be cut here).
    public var validLength: Int64
    public var fileLength: Int64
    public var fragments: Int
    /// Media duration of the whole fragments of the video track, in seconds.
    public var durationSeconds: Double
    /// The recorder's metadata comment, if present.
    public var comment: String?
    /// The video sample entry ("avc1", "hvc1", "mp4v"...).
    public var videoFormat: String?

    public var isTorn: Bool { validLength < fileLength }
}

public enum MP4ScanError: Error, Equatable, CustomStringConvertible {
    case unreadable(String)
    case notASegment(String)

    public var description: String {
        switch self {
        case .unreadable(let s): "cannot read: \(s)"
        case .notASegment(let s): "not a Junction segment: \(s)"
        }
    }
}

enum MP4Scanner {
    static func scan(path: String) throws(MP4ScanError) -> MP4Scan {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .unreadable(String(cString: strerror(errno))) }
        let length = Int64(st.st_size)
        let reader = BoxReader(fd: fd, length: length)

        var offset: Int64 = 0
        var sawMoov = false
        var timescale: UInt32 = 0
        var videoTrack: UInt32 = 0
        var trexDuration: [UInt32: UInt32] = [:]
        var comment: String?
        var format: String?
        var valid: Int64 = 0
        var fragments = 0
        var firstTime: UInt64?
        var endTime: UInt64 = 0
        var pendingFragmentEnd: UInt64?

        while length - offset >= 8 {
            guard let (type, size, headerSize) = reader.header(at: offset) else { break }
            // Sizes are compared before any addition: a box may declare 2^63 - 1 bytes.
            if size < headerSize || size > length - offset {
                break  // torn (or lying) box: stop at the last whole structure
            }
            let end = offset + size
            switch type {
            case "ftyp":
                guard offset == 0 else { throw .notASegment("ftyp is not first") }
            case "moov":
                guard size < 4 << 20, let body = reader.read(at: offset + headerSize, count: Int(size - headerSize)) else {
                    throw .notASegment("moov too large")
                }
                let moov = MP4Boxes.parseMoov(body)
                timescale = moov.timescale
                videoTrack = moov.videoTrack
                trexDuration = moov.trex
                comment = moov.comment
                format = moov.format
                sawMoov = true
                valid = end
            case "moof":
                guard sawMoov else { throw .notASegment("moof before moov") }
                guard size < 16 << 20, let body = reader.read(at: offset + headerSize, count: Int(size - headerSize)) else {
                    throw .notASegment("moof too large")
                }
                if let frag = MP4Boxes.parseMoof(body, track: videoTrack, trex: trexDuration) {
                    let (sum, overflow) = frag.base.addingReportingOverflow(frag.duration)
                    pendingFragmentEnd = overflow ? UInt64.max : sum
                    if firstTime == nil { firstTime = frag.base }
                } else {
                    pendingFragmentEnd = nil
                }
            case "mdat":
                if let e = pendingFragmentEnd { endTime = max(endTime, e) }
                pendingFragmentEnd = nil
                fragments += 1
                valid = end
            default:
                if sawMoov && pendingFragmentEnd == nil { valid = end }
            }
            offset = end
        }
        guard sawMoov else { throw .notASegment("no moov box (the file was cut before its header was written)") }
        var duration = 0.0
        if timescale > 0, let first = firstTime, endTime > first { duration = Double(endTime - first) / Double(timescale) }
        return MP4Scan(validLength: valid, fileLength: length, fragments: fragments,
                       durationSeconds: max(0, duration), comment: comment, videoFormat: format)
    }
}

/// Positional reads of box headers and small boxes.
struct BoxReader {
    let fd: Int32
    let length: Int64

    func read(at offset: Int64, count: Int) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return nil }
            done += n
        }
        return buf
    }

    /// (type, total size, header size) of the box at `offset`.
    func header(at offset: Int64) -> (String, Int64, Int64)? {
        guard let h = read(at: offset, count: 8) else { return nil }
        var size = Int64(MP4Boxes.be32(h, 0))
        let type = MP4Boxes.fourcc(h, 4)
        var headerSize: Int64 = 8
        if size == 1 {
            guard length - offset >= 16, let ext = read(at: offset + 8, count: 8) else { return nil }
            let wide = UInt64(MP4Boxes.be32(ext, 0)) << 32 | UInt64(MP4Boxes.be32(ext, 4))
            // A 64-bit size past Int64 cannot be a box of this file: call it torn here.
            size = wide > UInt64(Int64.max) ? Int64.max : Int64(wide)
            headerSize = 16
        } else if size == 0 {
            size = length - offset
        }
        return (type, size, headerSize)
    }
}
