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
                let moov = parseMoov(body)
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
                if let frag = parseMoof(body, track: videoTrack, trex: trexDuration) {
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

    struct Moov {
        var timescale: UInt32 = 0
        var videoTrack: UInt32 = 0
        var trex: [UInt32: UInt32] = [:]
        var comment: String?
        var format: String?
    }

    static func parseMoov(_ b: [UInt8]) -> Moov {
        var m = Moov()
        forEachBox(b, 0, b.count) { type, s, e in
            switch type {
            case "trak":
                var trackID: UInt32 = 0
                var ts: UInt32 = 0
                var isVideo = false
                var fmt: String?
                walk(b, s, e) { t, bs, be in
                    switch t {
                    case "tkhd":
                        let v = byte(b, bs)
                        trackID = be32(b, bs + (v == 1 ? 20 : 12))
                    case "mdhd":
                        let v = byte(b, bs)
                        ts = be32(b, bs + (v == 1 ? 20 : 12))
                    case "hdlr":
                        isVideo = fourcc(b, bs + 8) == "vide"
                    case "stsd":
                        if be - bs >= 16 { fmt = fourcc(b, bs + 12) }
                    default: break
                    }
                }
                if isVideo && m.videoTrack == 0 {
                    m.videoTrack = trackID
                    m.timescale = ts
                    m.format = fmt
                }
            case "mvex":
                forEachBox(b, s, e) { t, bs, _ in
                    if t == "trex" { m.trex[be32(b, bs + 4)] = be32(b, bs + 12) }
                }
            default: break
            }
        }
        // The comment sits in udta/meta/ilst/©cmt/data: look for the marker itself.
        let marker = Array("junction/1 ".utf8)
        if let start = find(marker, in: b) {
            var end = start
            while end < b.count, b[end] >= 0x20, b[end] < 0x7f { end += 1 }
            m.comment = String(decoding: b[start..<end], as: UTF8.self)
        }
        return m
    }

    struct Fragment { var base: UInt64; var duration: UInt64 }

    static func parseMoof(_ b: [UInt8], track: UInt32, trex: [UInt32: UInt32]) -> Fragment? {
        var result: Fragment?
        forEachBox(b, 0, b.count) { type, s, e in
            guard type == "traf" else { return }
            var id: UInt32 = 0
            var defaultDuration: UInt32?
            var base: UInt64 = 0
            var total: UInt64 = 0
            forEachBox(b, s, e) { t, bs, be in
                switch t {
                case "tfhd":
                    let flags = be32(b, bs) & 0xFFFFFF
                    id = be32(b, bs + 4)
                    var p = bs + 8
                    if flags & 0x01 != 0 { p += 8 }
                    if flags & 0x02 != 0 { p += 4 }
                    if flags & 0x08 != 0, p + 4 <= be { defaultDuration = be32(b, p) }
                case "tfdt":
                    base = byte(b, bs) == 1 ? (UInt64(be32(b, bs + 4)) << 32 | UInt64(be32(b, bs + 8))) : UInt64(be32(b, bs + 4))
                case "trun":
                    let flags = be32(b, bs) & 0xFFFFFF
                    let count = Int(be32(b, bs + 4))
                    var p = bs + 8
                    if flags & 0x001 != 0 { p += 4 }
                    if flags & 0x004 != 0 { p += 4 }
                    let perSample = (flags & 0x100 != 0 ? 4 : 0) + (flags & 0x200 != 0 ? 4 : 0)
                        + (flags & 0x400 != 0 ? 4 : 0) + (flags & 0x800 != 0 ? 4 : 0)
                    if flags & 0x100 != 0 {
                        // Only the samples whose entries are inside the box (a count may lie).
                        let present = min(count, max(0, (be - p) / perSample))
                        for k in 0..<present where p + k * perSample + 4 <= be {
                            total &+= UInt64(be32(b, p + k * perSample))
                        }
                    } else {
                        total &+= UInt64(count) &* UInt64(defaultDuration ?? trex[id] ?? 0)
                    }
                default: break
                }
            }
            if id == track { result = Fragment(base: base, duration: total) }
        }
        return result
    }

    /// Calls `body` for each box directly inside `b[start..<end]` with its payload range. A size
    /// that does not fit what is left (or that no Int holds) ends the walk.
    static func forEachBox(_ b: [UInt8], _ start: Int, _ end: Int, _ body: (String, Int, Int) -> Void) {
        var p = start
        let end = min(end, b.count)
        while end - p >= 8 {
            var size = UInt64(be32(b, p))
            var header = 8
            if size == 1 {
                guard end - p >= 16 else { return }
                size = UInt64(be32(b, p + 8)) << 32 | UInt64(be32(b, p + 12))
                header = 16
            } else if size == 0 {
                size = UInt64(end - p)
            }
            guard size >= UInt64(header), size <= UInt64(end - p) else { return }
            let n = Int(size)
            body(fourcc(b, p + 4), p + header, p + n)
            p += n
        }
    }

    /// Depth-first walk through the container boxes of a track; a file nesting them deeper than
    /// any real track (`maxDepth`) is not walked further.
    static let maxDepth = 8
    static func walk(_ b: [UInt8], _ start: Int, _ end: Int, depth: Int = 0, _ body: (String, Int, Int) -> Void) {
        guard depth < maxDepth else { return }
        forEachBox(b, start, end) { t, s, e in
            body(t, s, e)
            if ["mdia", "minf", "stbl"].contains(t) { walk(b, s, e, depth: depth + 1, body) }
        }
    }

    static func byte(_ b: [UInt8], _ p: Int) -> UInt8 { p >= 0 && p < b.count ? b[p] : 0 }

    static func be32(_ b: [UInt8], _ p: Int) -> UInt32 {
        guard p >= 0, p <= b.count - 4 else { return 0 }
        return UInt32(b[p]) << 24 | UInt32(b[p + 1]) << 16 | UInt32(b[p + 2]) << 8 | UInt32(b[p + 3])
    }

    static func fourcc(_ b: [UInt8], _ p: Int) -> String {
        guard p >= 0, p <= b.count - 4 else { return "" }
        return String(decoding: b[p..<p + 4], as: UTF8.self)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        outer: for i in 0...(hay.count - needle.count) {
            for j in 0..<needle.count where hay[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
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
        var size = Int64(MP4Scanner.be32(h, 0))
        let type = MP4Scanner.fourcc(h, 4)
        var headerSize: Int64 = 8
        if size == 1 {
            guard length - offset >= 16, let ext = read(at: offset + 8, count: 8) else { return nil }
            let wide = UInt64(MP4Scanner.be32(ext, 0)) << 32 | UInt64(MP4Scanner.be32(ext, 4))
            // A 64-bit size past Int64 cannot be a box of this file: call it torn here.
            size = wide > UInt64(Int64.max) ? Int64.max : Int64(wide)
            headerSize = 16
        } else if size == 0 {
            size = length - offset
        }
        return (type, size, headerSize)
    }
}
