import CFFmpeg
import Wire

/// Makes a footage request's preview (issue 14) from the segments on the card: the keyframes of
/// the range, at most one every `everySeconds`, each decoded on its own and encoded as a small
/// JPEG (`Snapshot.picture`, scaled to `width`). The recording is never re-encoded; this reads
/// finished segment files only, off the capture path.
public enum PreviewMaker {
    public struct Segment: Sendable {
        public var path: String
        /// The wall-clock time of the file's first packet (the index's start).
        public var start: Timestamp

        public init(path: String, start: Timestamp) {
            self.path = path
            self.start = start
        }
    }

    public struct Options: Sendable, Equatable {
        public var width = 320
        public var everySeconds = 2.0
        /// JPEG quantiser (2 best … 31): 8 keeps a 320-px picture near 10 kB.
        public var quality = 8
        /// The file stays under this (pictures thinned evenly when it would not).
        public var maxBytes = PreviewSheet.Limits.maxBytes

        public init(width: Int = 320, everySeconds: Double = 2.0, quality: Int = 8, maxBytes: Int = PreviewSheet.Limits.maxBytes) {
            self.width = width
            self.everySeconds = everySeconds
            self.quality = quality
            self.maxBytes = maxBytes
        }
    }

    /// The pictures of `from..<to`, in time order. A segment that cannot be read is skipped
    /// (its video still goes; the preview is a finding aid, not the evidence); at most
    /// `PreviewSheet.Limits.maxPictures` are made, spaced wider when the range is long.
    public static func pictures(of segments: [Segment], from: Timestamp, to: Timestamp,
                                options: Options = .init()) -> (pictures: [PreviewSheet.Picture], skipped: [String]) {
        let span = max(0, to.seconds(since: from))
        let every = max(options.everySeconds, span / Double(PreviewSheet.Limits.maxPictures - 1), 0.1)
        var pictures: [PreviewSheet.Picture] = [], skipped: [String] = []
        var last: Timestamp?
        for segment in segments {
            do throws(MediaError) {
                try keyframes(of: segment, from: from, to: to) { (at, codecpar, packet) throws(MediaError) in
                    // A keyframe every 2 s is one a picture: its spacing wobbles a few ms either side.
                    if let last, at.seconds(since: last) < every * 0.9 { return }
                    guard pictures.count < PreviewSheet.Limits.maxPictures else { return }
                    let p = try Snapshot.picture(codecpar: codecpar, packet: packet, target: segment.path,
                                                 width: options.width, quality: options.quality)
                    guard p.jpeg.count <= PreviewSheet.Limits.maxPictureBytes, p.jpeg.count >= 4 else { return }
                    pictures.append(.init(at: at, jpeg: p.jpeg))
                    last = at
                }
            } catch {
                skipped.append("\(segment.path): \(error.message)")
            }
        }
        return (thinned(pictures, toFit: options.maxBytes), skipped)
    }

    /// Every other picture dropped until the file fits `maxBytes`.
    static func thinned(_ pictures: [PreviewSheet.Picture], toFit maxBytes: Int) -> [PreviewSheet.Picture] {
        var pictures = pictures
        func size() -> Int { PreviewSheet.magic.count + pictures.reduce(0) { $0 + 12 + $1.jpeg.count } }
        while pictures.count > 1, size() > maxBytes {
            pictures = pictures.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        }
        return size() > maxBytes ? [] : pictures
    }

    /// Calls `body` with each keyframe of `segment` inside `from..<to`, its wall-clock time, the
    /// stream's parameters and the packet.
    static func keyframes(of segment: Segment, from: Timestamp, to: Timestamp,
                          _ body: (Timestamp, UnsafePointer<AVCodecParameters>, UnsafeMutablePointer<AVPacket>) throws(MediaError) -> Void) throws(MediaError) {
        try SegmentReader(path: segment.path).keyframes(target: segment.path) { (micros, codecpar, packet) throws(MediaError) in
            let at = Timestamp(milliseconds: segment.start.milliseconds + micros / 1000)
            guard at < to else { return false }
            if at >= from { try body(at, codecpar, packet) }
            return true
        }
    }
}
