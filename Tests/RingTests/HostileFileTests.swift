import Foundation
import Testing
@testable import Ring
import Wire

/// Issue 11, item 15: boxes that lie about their size, truncated and garbled files. The scanner
/// reads every file recovery and reindex meet; none of them may crash it or make it spin.
@Suite struct HostileFileTests {
    func write(_ bytes: [UInt8]) throws -> String {
        let path = makeRoot() + "/x.mp4"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func aBoxDeclaringA64BitSizeOfInt64MaxIsTornNotACrash() throws {
        let o = FakeSegment.origin(t0)
        let good = FakeSegment.bytes(origin: o, fragments: 3)
        let liar = FakeSegment.be32(1) + Array("mdat".utf8) + FakeSegment.be64(0x7fff_ffff_ffff_ffff) + [UInt8](repeating: 7, count: 100)
        let scan = try MP4Scanner.scan(path: try write(good + liar))
        #expect(scan.fragments == 3 && scan.isTorn && scan.validLength == Int64(good.count))
        // The same inside the moov, and a 64-bit size past Int64.
        let header = FakeSegment.header(origin: o)
        let huge = FakeSegment.be32(1) + Array("trak".utf8) + FakeSegment.be64(.max)
        let inMoov = FakeSegment.box("moov", huge + [UInt8](repeating: 0, count: 32))
        _ = try? MP4Scanner.scan(path: try write(Array(header.prefix(32)) + inMoov + FakeSegment.fragment(index: 0)))
        let top = FakeSegment.be32(1) + Array("free".utf8) + FakeSegment.be64(.max)
        #expect(try MP4Scanner.scan(path: try write(good + top)).validLength == Int64(good.count))
    }

    @Test func lyingSampleCountsAndEmptyBoxesAreBounded() throws {
        let o = FakeSegment.origin(t0)
        // A trun claiming 4 billion samples with durations, in a fragment of a few bytes.
        let tfhd = FakeSegment.box("tfhd", FakeSegment.be32(0x020000) + FakeSegment.be32(1))
        let trun = FakeSegment.box("trun", FakeSegment.be32(0x000101) + FakeSegment.be32(.max) + FakeSegment.be32(0) + FakeSegment.be32(3600))
        let moof = FakeSegment.box("moof", FakeSegment.box("traf", tfhd + FakeSegment.box("tfdt", []) + trun))
        let file = FakeSegment.header(origin: o) + moof + FakeSegment.box("mdat", [1, 2, 3])
        let clock = ContinuousClock()
        var scan: MP4Scan?
        let took = clock.measure { scan = try? MP4Scanner.scan(path: try! write(file)) }
        #expect(scan?.fragments == 1)
        #expect(took < .seconds(30), "a lying count must not make the scanner walk it")
        // Empty tkhd/mdhd/tfdt boxes at the very end of their parent.
        let empty = FakeSegment.box("moov", FakeSegment.box("trak", FakeSegment.box("tkhd", []) + FakeSegment.box("mdia", FakeSegment.box("mdhd", []))))
        _ = try? MP4Scanner.scan(path: try write(Array(FakeSegment.header(origin: o).prefix(24)) + empty))
    }

    @Test func deeplyNestedContainersStopAtTheDepthBound() throws {
        var inner: [UInt8] = []
        for _ in 0..<50_000 { inner = FakeSegment.box("mdia", inner) }
        let moov = FakeSegment.box("moov", FakeSegment.box("trak", inner))
        _ = try? MP4Scanner.scan(path: try write(Array(FakeSegment.header(origin: FakeSegment.origin(t0)).prefix(24)) + moov))
    }
}
