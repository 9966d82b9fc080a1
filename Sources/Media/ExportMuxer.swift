import CFFmpeg
#if canImport(Glibc)
import Glibc
#endif

/// Joins ring segments into one ordinary MP4 (moov at the front, so browsers and VLC play it at
/// once) without re-encoding: packets are copied, each segment's timeline shifted to where the
/// segment sits in real time, so a gap in the recording is a jump in the file's timeline, not a
/// lie about when things happened. Owns its contexts; `deinit` frees them and, unless `finish`
/// succeeded, deletes the file.
public final class ExportMuxer {
    /// Video (and audio) parameters of the first segment; a segment that differs starts a new part.
    public struct Format: Equatable, Sendable {
        public var codec: String
        public var width: Int32
        public var height: Int32
        public var hasAudio: Bool
    }

    private var output: UnsafeMutablePointer<AVFormatContext>?
    private let path: String
    public let format: Format
    private var videoOut: Int32 = 0
    private var audioOut: Int32 = -1
    private var lastDTS: [Int64] = [Int64.min, Int64.min]
    private var headerWritten = false
    private var finished = false
    public private(set) var packets = 0
    public private(set) var dropped = 0

    /// Creates `path`, with streams shaped like those of `template` (a segment file).
    public init(path: String, template: String) throws(MediaError) {
        self.path = path
        let input = try SegmentReader(path: template)
        format = input.format
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        do throws(MediaError) {
            try check(avformat_alloc_output_context2(&ctx, nil, "mp4", path), "avformat_alloc_output_context2", target: path)
            output = ctx
            for (n, ist) in [input.video, input.audio].compactMap({ $0 }).enumerated() {
                guard let ost = avformat_new_stream(ctx, nil) else {
                    throw MediaError(code: .other, call: "avformat_new_stream", target: path, message: "out of memory")
                }
                try check(avcodec_parameters_copy(ost.pointee.codecpar, ist.pointee.codecpar), "avcodec_parameters_copy", target: path)
                ost.pointee.time_base = ist.pointee.time_base
                if n == 1 { audioOut = 1 }
            }
            try check(avio_open(&ctx!.pointee.pb, path, AVIO_FLAG_WRITE), "avio_open", target: path, code: .storage,
                      "cannot create the export file")
        } catch {
            release()
            unlink(path)
            throw error
        }
    }

    deinit {
        release()
        if !finished { unlink(path) }
    }

    private func release() {
        if let o = output {
            if o.pointee.pb != nil { avio_closep(&o.pointee.pb) }
            avformat_free_context(o)
            output = nil
        }
    }

    /// Bytes written so far (the moov is added at the end: allow for it when splitting).
    public var bytesWritten: Int64 {
        guard let pb = output?.pointee.pb else { return 0 }
        return avio_size(pb) > 0 ? avio_size(pb) : avio_tell(pb)
    }

    /// Copies every packet of the segment at `path`, its timeline starting `offsetMicroseconds`
    /// into the export. Packets whose DTS would not increase are dropped and counted.
    public func append(segment path: String, offsetMicroseconds: Int64) throws(MediaError) {
        let input = try SegmentReader(path: path)
        guard input.format.codec == format.codec, input.format.width == format.width, input.format.height == format.height else {
            throw MediaError(code: .invalidData, call: "append", target: path, message: "the camera's video format changed")
        }
        if !headerWritten {
            var opts: OpaquePointer? = nil
            defer { av_dict_free(&opts) }
            av_dict_set(&opts, "movflags", "+faststart", 0)
            try check(avformat_write_header(output, &opts), "avformat_write_header", target: self.path, code: .storage,
                      "cannot start the export file")
            headerWritten = true
        }
        let pkt = av_packet_alloc()
        defer { var p = pkt; av_packet_free(&p) }
        while true {
            let status = av_read_frame(input.context, pkt)
            if status == cff_averror_eof() { break }
            try check(status, "av_read_frame", target: path, code: .invalidData, "the segment cannot be read")
            defer { av_packet_unref(pkt) }
            let inIndex = pkt!.pointee.stream_index
            let out: Int32
            let ist: UnsafeMutablePointer<AVStream>
            if inIndex == input.video?.pointee.index, let v = input.video {
                out = videoOut; ist = v
            } else if inIndex == input.audio?.pointee.index, audioOut >= 0, let a = input.audio {
                out = audioOut; ist = a
            } else {
                continue
            }
            let ost = output!.pointee.streams[Int(out)]!
            let offset = av_rescale_q(offsetMicroseconds, cff_time_base_q(), ost.pointee.time_base)
            var dts = pkt!.pointee.dts != cff_nopts_value() ? pkt!.pointee.dts : pkt!.pointee.pts
            guard dts != cff_nopts_value() else { dropped += 1; continue }
            dts = av_rescale_q(dts, ist.pointee.time_base, ost.pointee.time_base) + offset
            var pts = pkt!.pointee.pts != cff_nopts_value()
                ? av_rescale_q(pkt!.pointee.pts, ist.pointee.time_base, ost.pointee.time_base) + offset : dts
            if pts < dts { pts = dts }
            guard dts > lastDTS[Int(out)] else { dropped += 1; continue }
            lastDTS[Int(out)] = dts
            pkt!.pointee.dts = dts
            pkt!.pointee.pts = pts
            pkt!.pointee.duration = av_rescale_q(pkt!.pointee.duration, ist.pointee.time_base, ost.pointee.time_base)
            pkt!.pointee.stream_index = out
            pkt!.pointee.pos = -1
            try check(av_interleaved_write_frame(output, pkt), "av_interleaved_write_frame", target: self.path, code: .storage,
                      "cannot write the export file")
            packets += 1
        }
    }

    /// Writes the index (moved to the front) and closes the file.
    public func finish() throws(MediaError) {
        precondition(headerWritten && !finished, "ExportMuxer.finish: nothing appended, or called twice")
        try check(av_write_trailer(output), "av_write_trailer", target: path, code: .storage, "cannot finish the export file")
        try check(avio_closep(&output!.pointee.pb), "avio_close", target: path, code: .storage, "cannot close the export file")
        finished = true
        release()
    }
}

/// One segment file opened for reading: its video stream and first audio stream.
final class SegmentReader {
    var context: UnsafeMutablePointer<AVFormatContext>?
    let video: UnsafeMutablePointer<AVStream>?
    let audio: UnsafeMutablePointer<AVStream>?
    let format: ExportMuxer.Format

    init(path: String) throws(MediaError) {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        try check(avformat_open_input(&ctx, path, nil, nil), "avformat_open_input", target: path, code: .invalidData,
                  "cannot open the segment")
        context = ctx
        var v: UnsafeMutablePointer<AVStream>?, a: UnsafeMutablePointer<AVStream>?
        for i in 0..<Int(ctx!.pointee.nb_streams) {
            let s = ctx!.pointee.streams[i]!
            switch s.pointee.codecpar.pointee.codec_type {
            case AVMEDIA_TYPE_VIDEO where v == nil: v = s
            case AVMEDIA_TYPE_AUDIO where a == nil: a = s
            default: break
            }
        }
        video = v
        audio = a
        guard let v else {
            avformat_close_input(&context)
            throw MediaError(code: .noVideo, call: "avformat_open_input", target: path, message: "the segment has no video")
        }
        let par = v.pointee.codecpar.pointee
        format = ExportMuxer.Format(codec: String(cString: avcodec_get_name(par.codec_id)), width: par.width, height: par.height,
                                    hasAudio: a != nil)
    }

    deinit { avformat_close_input(&context) }
}
