import Foundation
import Hostile
@testable import Ring

/// Small fragmented-MP4 segment files with the box layout the recorder writes (ftyp, moov with
/// the `junction/1` comment, then moof+mdat pairs; `Hostile.FragmentedMP4` makes the bytes), so
/// ring tests need no FFmpeg.
enum FakeSegment {
    static let timescale = FragmentedMP4.timescale

    static func be32(_ v: UInt32) -> [UInt8] { FragmentedMP4.be32(v) }
    static func be64(_ v: UInt64) -> [UInt8] { FragmentedMP4.be64(v) }
    static func box(_ type: String, _ payload: [UInt8]) -> [UInt8] { FragmentedMP4.box(type, payload) }

    static func header(origin: SegmentOrigin) -> [UInt8] { FragmentedMP4.header(comment: origin.comment) }

    /// One fragment: `frames` samples of 40 ms (3600 ticks) and `payload` bytes of mdat.
    static func fragment(index: Int, frames: Int = 25, payload: Int = 20_000) -> [UInt8] {
        FragmentedMP4.fragment(index: index, frames: frames, payload: payload)
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
