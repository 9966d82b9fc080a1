/// A fragmented MP4 the way the recorder writes one, built box by box for tests that must not
/// need FFmpeg: `ftyp`, a `moov` with one video track (`tkhd`, `mdhd` with its timescale, `hdlr`
/// `vide`, `stsd` avc1), `mvex`/`trex` and, when given, the recorder's `junction/1` comment in
/// `udta`; then per fragment a `moof` (`mfhd`, `traf` with `tfhd`, a version-1 `tfdt` and a
/// `trun` of per-sample durations) and its `mdat`. Decode times start at 0, as the recorder's do.
/// The ring's tests (`FakeSegment`) and the evidence's fragment map use the same bytes.
public enum FragmentedMP4 {
    public static let timescale: UInt32 = 90_000

    public static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    public static func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(v & 0xffff_ffff)) }
    public static func box(_ type: String, _ payload: [UInt8]) -> [UInt8] { box(Array(type.utf8), payload) }
    public static func box(_ type: [UInt8], _ payload: [UInt8]) -> [UInt8] { be32(UInt32(8 + payload.count)) + type + payload }

    /// `ftyp` and `moov` for track 1 at `timescale` ticks a second.
    public static func header(comment: String? = nil) -> [UInt8] {
        let ftyp = box("ftyp", Array("isom".utf8) + be32(512) + Array("isomiso6mp41".utf8))
        let tkhd = box("tkhd", be32(3) + be32(0) + be32(0) + be32(1) + [UInt8](repeating: 0, count: 68))
        let mdhd = box("mdhd", be32(0) + be32(0) + be32(0) + be32(timescale) + be32(0) + be32(0))
        let hdlr = box("hdlr", be32(0) + be32(0) + Array("vide".utf8) + [UInt8](repeating: 0, count: 13))
        let stsd = box("stsd", be32(0) + be32(1) + box("avc1", [UInt8](repeating: 0, count: 78)))
        let trak = box("trak", tkhd + box("mdia", mdhd + hdlr + box("minf", box("stbl", stsd))))
        let trex = box("trex", be32(0) + be32(1) + be32(1) + be32(3600) + be32(0) + be32(0))
        let udta = comment.map { box("udta", box("meta", be32(0) + box("ilst", box([0xa9, 0x63, 0x6d, 0x74], box("data", be32(1) + be32(0) + Array($0.utf8)))))) } ?? []
        return ftyp + box("moov", trak + box("mvex", trex) + udta)
    }

    /// Fragment `index` (from 0): `frames` samples of 40 ms (3600 ticks) and `payload` bytes of
    /// `mdat`, which differ from every other fragment's.
    public static func fragment(index: Int, frames: Int = 25, payload: Int = 20_000) -> [UInt8] {
        let base = UInt64(index * frames * 3600)
        let tfhd = box("tfhd", be32(0x020000) + be32(1))
        let tfdt = box("tfdt", be32(1 << 24) + be64(base))
        var trun = be32(0x000101) + be32(UInt32(frames)) + be32(0)
        for _ in 0..<frames { trun += be32(3600) }
        let moof = box("moof", box("mfhd", be32(0) + be32(UInt32(index + 1))) + box("traf", tfhd + tfdt + box("trun", trun)))
        var media = [UInt8](repeating: UInt8(index & 0xff), count: payload)
        for i in stride(from: 0, to: media.count, by: 97) { media[i] = UInt8(truncatingIfNeeded: i &* 31 ^ index &* 131) }
        return moof + box("mdat", media)
    }

    /// A whole segment of `fragments` one-second fragments, with the byte offset where each
    /// piece starts (index 0: the header, n: fragment n).
    public static func segment(fragments: Int, payload: Int = 2000, comment: String? = nil) -> (bytes: [UInt8], starts: [Int]) {
        var bytes = header(comment: comment)
        var starts = [0]
        for i in 0..<max(1, fragments) {
            starts.append(bytes.count)
            bytes += fragment(index: i, payload: payload)
        }
        return (bytes, starts)
    }
}
