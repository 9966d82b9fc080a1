import Foundation
@testable import Ring

/// Builds small fragmented-MP4 files with the box layout the recorder writes (ftyp, moov with
/// the `junction/1` comment, then moof+mdat pairs), so ring tests need no FFmpeg.
enum FakeSegment {
    static let timescale: UInt32 = 90_000

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    static func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(v & 0xffff_ffff)) }
    static func box(_ type: String, _ payload: [UInt8]) -> [UInt8] { box(Array(type.utf8), payload) }
    static func box(_ type: [UInt8], _ payload: [UInt8]) -> [UInt8] { be32(UInt32(8 + payload.count)) + type + payload }

    static func header(origin: SegmentOrigin) -> [UInt8] {
        let ftyp = box("ftyp", Array("isom".utf8) + be32(512) + Array("isomiso6mp41".utf8))
        let tkhd = box("tkhd", be32(3) + be32(0) + be32(0) + be32(1) + [UInt8](repeating: 0, count: 68))
        let mdhd = box("mdhd", be32(0) + be32(0) + be32(0) + be32(timescale) + be32(0) + be32(0))
        let hdlr = box("hdlr", be32(0) + be32(0) + Array("vide".utf8) + [UInt8](repeating: 0, count: 13))
        let stsd = box("stsd", be32(0) + be32(1) + box("avc1", [UInt8](repeating: 0, count: 78)))
        let trak = box("trak", tkhd + box("mdia", mdhd + hdlr + box("minf", box("stbl", stsd))))
        let trex = box("trex", be32(0) + be32(1) + be32(1) + be32(3600) + be32(0) + be32(0))
        let udta = box("udta", box("meta", be32(0) + box("ilst", box([0xa9, 0x63, 0x6d, 0x74], box("data", be32(1) + be32(0) + Array(origin.comment.utf8))))))
        let moov = box("moov", trak + box("mvex", trex) + udta)
        return ftyp + moov
    }

    /// One fragment: `frames` samples of 40 ms (3600 ticks) and `payload` bytes of mdat.
    static func fragment(index: Int, frames: Int = 25, payload: Int = 20_000) -> [UInt8] {
        let base = UInt64(index * frames * 3600)
        let tfhd = box("tfhd", be32(0x020000) + be32(1))
        let tfdt = box("tfdt", be32(1 << 24) + be64(base))
        var trun = be32(0x000101) + be32(UInt32(frames)) + be32(0)
        for _ in 0..<frames { trun += be32(3600) }
        let moof = box("moof", box("mfhd", be32(0) + be32(UInt32(index + 1))) + box("traf", tfhd + tfdt + box("trun", trun)))
        return moof + box("mdat", [UInt8](repeating: UInt8(index & 0xff), count: payload))
    }

    static func bytes(origin: SegmentOrigin, fragments: Int, payload: Int = 20_000) -> [UInt8] {
        var b = header(origin: origin)
        for i in 0..<fragments { b += fragment(index: i, payload: payload) }
        return b
    }

    static func origin(_ start: Timestamp, camera: String = "cam1") -> SegmentOrigin {
        SegmentOrigin(camera: camera, start: start, monotonicNanos: 1_000_000_000, bootID: "boot-1", clockSynchronized: true, codec: "h264")
    }

    /// Writes a segment file where the recorder would, and returns what the recorder would commit.
    static func write(_ ring: Ring, start: Timestamp, fragments: Int = 4, payload: Int = 20_000) throws -> FinishedSegment {
        let o = origin(start)
        let path = try ring.prepareSegmentPath(for: o)
        let data = Data(bytes(origin: o, fragments: fragments, payload: payload))
        try data.write(to: URL(fileURLWithPath: path))
        return FinishedSegment(path: path, origin: o, bytes: Int64(data.count), sha256: try FileSystem.sha256(path),
                               durationSeconds: Double(fragments))
    }
}
