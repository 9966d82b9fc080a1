import Foundation
import Media
import Testing
@testable import Ring

/// Per-fragment durability: while a segment is still open, every whole fragment is fdatasynced
/// (off the writing thread), so a power cut keeps all but the fragment being written. What a
/// power cut keeps is the durable prefix of the file; recovery must find it whole.
@Suite(.timeLimit(.minutes(3)))
struct DurabilityTests {
    @Test func eachWholeFragmentIsDurableWhileTheSegmentIsOpen() throws {
        // Keyframes every 2 s: fragments must still be cut at 1 s.
        let clip = try Rig.clip(bitrate: "1M", size: "640x360", seconds: 12, audio: "none", gop: 50)
        let dir = Rig.tempDir("durable")
        let input = try CameraInput(options: .init(url: clip), interrupter: Interrupter())
        let packet = Packet()
        try input.read(into: packet)
        while !(packet.kind == .video && packet.isKeyframe) { try input.read(into: packet) }
        let origin = try #require(packet.dtsMicroseconds)
        let path = dir + "/segment.mp4"
        let muxer = try SegmentMuxer(path: path, input: input, originMicroseconds: origin, comment: "junction/1 test")
        let header = muxer.bytesWritten
        #expect(header > 0 && muxer.bytesDurable == 0, "the header is written at once, and not synced on its own")

        var checked = 0
        var lastDurable: Int64 = 0
        var frames = 0
        while true {
            if packet.kind == .video { frames += 1 }
            try muxer.write(packet)
            if frames % 20 == 0 && muxer.bytesWritten > header {
                // The sync runs on its own thread: wait (bounded) for it to catch up with what
                // was written. Between fragments the muxer holds the open one in memory, so
                // everything written is header + whole fragments.
                let caughtUp = Rig.wait(seconds: 5, every: 0.01) { muxer.bytesDurable == muxer.bytesWritten }
                #expect(caughtUp, "durable \(muxer.bytesDurable) of \(muxer.bytesWritten) bytes after 5 s")
                let durable = muxer.bytesDurable
                #expect(durable >= lastDurable)
                if durable > lastDurable, let end = muxer.durableEndMicroseconds {
                    // What a power cut would leave: the durable prefix. It must end on a whole
                    // fragment, and hold the media time the mark says.
                    let prefix = dir + "/prefix-\(checked).mp4"
                    let whole = try Data(contentsOf: URL(fileURLWithPath: path))
                    try whole.prefix(Int(durable)).write(to: URL(fileURLWithPath: prefix))
                    let scan = try MP4Scanner.scan(path: prefix)
                    #expect(!scan.isTorn && scan.validLength == durable, "the durable prefix ends mid-fragment: \(scan)")
                    #expect(abs(scan.durationSeconds - Double(end - origin) / 1e6) <= 0.045,
                            "durable mark \(Double(end - origin) / 1e6) s, prefix holds \(scan.durationSeconds) s")
                    checked += 1
                }
                lastDurable = durable
            }
            do { try input.read(into: packet) } catch { break }
        }
        let finished = try muxer.finish()
        #expect(muxer.bytesDurable == finished.bytes)
        #expect(checked >= 8, "only \(checked) durable points were seen")
        // 12 s in fragments of at most 1 s (a keyframe only every 2 s).
        let scan = try MP4Scanner.scan(path: path)
        #expect(scan.fragments >= 11, "\(scan.fragments) fragments for \(scan.durationSeconds) s")
        #expect(Double(SegmentMuxer.maxFragmentMicroseconds) / 1e6 * Double(scan.fragments) >= scan.durationSeconds)
        // Fragments that start between keyframes still decode, every frame.
        let n = try Rig.ffprobe(["-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path])
        #expect(Int(n.trimmingCharacters(in: .whitespacesAndNewlines)) == frames)
    }
}
