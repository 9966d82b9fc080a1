/// A footage request's preview (issue 14): the range's keyframes as small JPEGs, in one file the
/// box uploads (one tus upload) before the video, so the officer sees *what* is in the range
/// while the video is still far away on a thin link.
///
/// Format, version 1: the 10 bytes `JPREVIEW1\n`, then pictures, each a 12-byte head (the
/// picture's wall-clock time as big-endian u64 milliseconds since 1970, the JPEG's length as
/// big-endian u32) and the JPEG. Pictures come in the order sent — coarse to fine over the
/// range (`coarseToFine`), so the first few already span it — not in time order. A reader of a
/// partial upload takes every whole picture that has arrived.
public enum PreviewSheet {
    public static let magic: [UInt8] = Array("JPREVIEW1\n".utf8)
    static let headBytes = 12

    /// Bounds (README, "Limits"): a box never makes more, the commune refuses more.
    public enum Limits {
        public static let maxPictureBytes = 256 << 10
        public static let maxPictures = 2000
        public static let maxBytes = 16 << 20
        /// Times a picture may carry: 2000-01-01 to 2100-01-01 UTC.
        public static let earliest = Timestamp(milliseconds: 946_684_800_000)
        public static let latest = Timestamp(milliseconds: 4_102_444_800_000)
        /// What a picture's JPEG frame header may declare: each side 8 to 2560 pixels, at most
        /// 1280 × 2560 in all (a box makes them 160–1280 wide; a portrait camera's are taller),
        /// so no picture is a decompression bomb for the officer's browser (issue 22: 192 bytes
        /// declaring 65535 × 65535 were served).
        public static let sides = 8...2560
        public static let maxPixels = 1280 * 2560
        /// JPEG segments read before the frame header (a box's have 4–8).
        public static let maxSegments = 64
    }

    public struct Picture: Sendable, Equatable {
        public var at: Timestamp
        public var jpeg: [UInt8]

        public init(at: Timestamp, jpeg: [UInt8]) {
            self.at = at
            self.jpeg = jpeg
        }
    }

    /// Where one picture lies in a file.
    public struct Entry: Sendable, Equatable {
        public var at: Timestamp
        public var offset: Int
        public var length: Int

        public init(at: Timestamp, offset: Int, length: Int) {
            self.at = at
            self.offset = offset
            self.length = length
        }
    }

    /// What a scan found: the whole pictures, how many bytes they and the header take, and
    /// what is wrong (nil: nothing; a partial file's cut-off tail is not wrong unless `whole`).
    public struct Scan: Sendable, Equatable {
        public var entries: [Entry] = []
        public var consumed = 0
        public var problem: String?

        public init() {}
    }

    public static func head(_ at: Timestamp, length: Int) -> [UInt8] {
        let ms = UInt64(max(0, at.milliseconds)), n = UInt32(length)
        return (0..<8).map { UInt8(truncatingIfNeeded: ms >> (56 - 8 * $0)) } + (0..<4).map { UInt8(truncatingIfNeeded: n >> (24 - 8 * $0)) }
    }

    /// The file for `pictures`, in the order given.
    public static func encode(_ pictures: [Picture]) -> [UInt8] {
        var out = magic
        for p in pictures { out += head(p.at, length: p.jpeg.count) + p.jpeg }
        return out
    }

    /// Reads a file of `size` bytes through `read(offset, count)` (heads and each JPEG's first
    /// and last bytes only: the desk scans a 16 MB file without loading it). `whole`: the file
    /// is complete, so a cut-off tail is a problem; otherwise it is the part still to come.
    public static func scan(size: Int, whole: Bool, read: (Int, Int) throws -> [UInt8]) rethrows -> Scan {
        var scan = Scan()
        guard size >= magic.count else {
            let arrived = size > 0 ? try read(0, size) : []
            if whole || arrived != Array(magic.prefix(size)) { scan.problem = "not a preview: too short" }
            return scan
        }
        guard try read(0, magic.count) == magic else { scan.problem = "not a preview (no JPREVIEW1 header)"; return scan }
        guard size <= Limits.maxBytes else { scan.problem = "the preview is over \(Limits.maxBytes) bytes"; return scan }
        var offset = magic.count
        scan.consumed = offset
        while offset < size {
            guard size - offset >= headBytes else {
                if whole { scan.problem = "the preview ends inside a picture's head" }
                return scan
            }
            let h = try read(offset, headBytes)
            let ms = h[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let length = Int(h[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            guard ms <= UInt64(Limits.latest.milliseconds), Int64(ms) >= Limits.earliest.milliseconds else {
                scan.problem = "picture \(scan.entries.count + 1) has a time outside 2000–2100"; return scan
            }
            guard length >= 4, length <= Limits.maxPictureBytes else {
                scan.problem = "picture \(scan.entries.count + 1) is \(length) bytes; 4 to \(Limits.maxPictureBytes) allowed"; return scan
            }
            guard scan.entries.count < Limits.maxPictures else { scan.problem = "more than \(Limits.maxPictures) pictures"; return scan }
            let start = offset + headBytes
            guard size - start >= length else {
                if whole { scan.problem = "the preview ends inside picture \(scan.entries.count + 1)" }
                return scan
            }
            guard try read(start, 2) == [0xFF, 0xD8], try read(start + length - 2, 2) == [0xFF, 0xD9] else {
                scan.problem = "picture \(scan.entries.count + 1) is not a JPEG"; return scan
            }
            switch try frameSize(at: start, length: length, read: read) {
            case nil:
                scan.problem = "picture \(scan.entries.count + 1) is not a JPEG (no frame header)"; return scan
            case let (w, h)? where !Limits.sides.contains(w) || !Limits.sides.contains(h) || w * h > Limits.maxPixels:
                scan.problem = "picture \(scan.entries.count + 1) declares \(w) × \(h) pixels; each side \(Limits.sides.lowerBound)–\(Limits.sides.upperBound) and at most \(Limits.maxPixels) in all"
                return scan
            default: break
            }
            scan.entries.append(Entry(at: Timestamp(milliseconds: Int64(ms)), offset: start, length: length))
            offset = start + length
            scan.consumed = offset
        }
        return scan
    }

    /// The width and height a JPEG's frame header (SOF0–SOF15) declares, read marker by marker
    /// from its start (at most `Limits.maxSegments`, never past `length`); nil when there is none
    /// before its scan data.
    static func frameSize(at start: Int, length: Int, read: (Int, Int) throws -> [UInt8]) rethrows -> (Int, Int)? {
        let end = start + length
        var pos = start + 2
        for _ in 0..<Limits.maxSegments {
            guard end - pos >= 4 else { return nil }
            let m = try read(pos, 4)
            guard m.count == 4, m[0] == 0xFF else { return nil }
            if m[1] == 0xFF { pos += 1; continue }                        // fill byte
            if (0xD0...0xD7).contains(m[1]) || m[1] == 0x01 { pos += 2; continue }  // no length
            let segment = Int(m[2]) << 8 | Int(m[3])
            guard segment >= 2 else { return nil }
            if (0xC0...0xCF).contains(m[1]) && ![0xC4, 0xC8, 0xCC].contains(m[1]) {
                guard segment >= 7, end - pos >= 9 else { return nil }
                let f = try read(pos + 5, 4)
                guard f.count == 4 else { return nil }
                return (Int(f[2]) << 8 | Int(f[3]), Int(f[0]) << 8 | Int(f[1]))
            }
            if m[1] == 0xDA || m[1] == 0xD9 { return nil }                // scan data or the end, and no frame yet
            pos += 2 + segment
        }
        return nil
    }

    /// Scans bytes in memory.
    public static func scan(_ bytes: [UInt8], whole: Bool) -> Scan {
        scan(size: bytes.count, whole: whole) { offset, count in Array(bytes[offset..<min(bytes.count, offset + count)]) }
    }

    /// Indices of `count` pictures in time order, coarse to fine: the first, then the middle,
    /// then the quarters, ... — the first pictures to arrive already span the range.
    public static func coarseToFine(_ count: Int) -> [Int] {
        guard count > 0 else { return [] }
        var order: [Int] = [], taken = [Bool](repeating: false, count: count)
        var step = 1
        while step * 2 < count { step *= 2 }
        while step >= 1 {
            for i in stride(from: 0, to: count, by: step) where !taken[i] {
                taken[i] = true
                order.append(i)
            }
            step /= 2
        }
        return order
    }
}
