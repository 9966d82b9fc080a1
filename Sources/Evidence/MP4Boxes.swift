/// The few MP4 boxes Junction reads itself, from bytes in memory: a segment's `moov` (the video
/// track, its timescale, `trex` defaults, the recorder's comment) and a `moof` (the track's base
/// decode time and duration). Every offset is checked against the bytes held: a lying size ends
/// the walk, never reads past it. Shared by the ring's scanner (recovery, `check`, `reindex`) and
/// the evidence's fragment map (which seconds of a damaged segment were lost).
public enum MP4Boxes {
    public struct Moov: Sendable, Equatable {
        public var timescale: UInt32 = 0
        public var videoTrack: UInt32 = 0
        public var trex: [UInt32: UInt32] = [:]
        public var comment: String?
        public var format: String?
    }

    public static func parseMoov(_ b: [UInt8]) -> Moov {
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

    /// A fragment of one track: its base decode time and duration, in the track's timescale.
    public struct Fragment: Sendable, Equatable { public var base: UInt64; public var duration: UInt64 }

    public static func parseMoof(_ b: [UInt8], track: UInt32, trex: [UInt32: UInt32]) -> Fragment? {
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
    public static func forEachBox(_ b: [UInt8], _ start: Int, _ end: Int, _ body: (String, Int, Int) -> Void) {
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
    public static let maxDepth = 8
    public static func walk(_ b: [UInt8], _ start: Int, _ end: Int, depth: Int = 0, _ body: (String, Int, Int) -> Void) {
        guard depth < maxDepth else { return }
        forEachBox(b, start, end) { t, s, e in
            body(t, s, e)
            if ["mdia", "minf", "stbl"].contains(t) { walk(b, s, e, depth: depth + 1, body) }
        }
    }

    public static func byte(_ b: [UInt8], _ p: Int) -> UInt8 { p >= 0 && p < b.count ? b[p] : 0 }

    public static func be32(_ b: [UInt8], _ p: Int) -> UInt32 {
        guard p >= 0, p <= b.count - 4 else { return 0 }
        return UInt32(b[p]) << 24 | UInt32(b[p + 1]) << 16 | UInt32(b[p + 2]) << 8 | UInt32(b[p + 3])
    }

    public static func fourcc(_ b: [UInt8], _ p: Int) -> String {
        guard p >= 0, p <= b.count - 4 else { return "" }
        return String(decoding: b[p..<p + 4], as: UTF8.self)
    }

    public static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        outer: for i in 0...(hay.count - needle.count) {
            for j in 0..<needle.count where hay[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
    }
}
