import Activity
import CFFmpeg

/// Decodes keyframes only, each on its own, into the activity index's small grey picture
/// (issue 14): libavcodec with `skip_frame = AVDISCARD_NONKEY`, fed one keyframe, drained and
/// flushed, then libswscale's area average down to 64 × 36 luma. Nothing is re-encoded and the
/// recording never waits for it: the recorder hands keyframes over (`ActivityWorker`) and goes on.
public final class KeyframeDecoder {
    private var context: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    /// The scaler, kept while the picture size stays (`cff_sws_cached`).
    private var scaler: UnsafeMutableRawPointer?
    private let target: String

    /// Opens a decoder for the stream `codecpar` describes (copied: the stream may go away).
    public init(codecpar: UnsafePointer<AVCodecParameters>, target: String) throws(MediaError) {
        self.target = target
        guard let decoder = avcodec_find_decoder(codecpar.pointee.codec_id) else {
            throw MediaError(code: .unsupportedCodec, call: "avcodec_find_decoder", target: target, message: "no decoder for this video")
        }
        context = avcodec_alloc_context3(decoder)
        frame = av_frame_alloc()
        guard context != nil, frame != nil else {
            release()
            throw MediaError(code: .other, call: "avcodec_alloc_context3", target: target, message: "out of memory")
        }
        do throws(MediaError) {
            try check(avcodec_parameters_to_context(context, codecpar), "avcodec_parameters_to_context", target: target)
            context!.pointee.skip_frame = AVDISCARD_NONKEY
            context!.pointee.thread_count = 1
            try check(avcodec_open2(context, decoder, nil), "avcodec_open2", target: target)
        } catch {
            release()
            throw error
        }
    }

    deinit { release() }

    private func release() {
        avcodec_free_context(&context)
        av_frame_free(&frame)
        if let scaler { cff_sws_free(scaler) }
        scaler = nil
    }

    /// The keyframe in `packet` as a grey picture of `width` × `height`.
    public func grey(_ packet: UnsafeMutablePointer<AVPacket>, width: Int = GreyPicture.width,
                     height: Int = GreyPicture.height) throws(MediaError) -> GreyPicture {
        defer { avcodec_flush_buffers(context) }
        try check(avcodec_send_packet(context, packet), "avcodec_send_packet", target: target, code: .invalidData, "the keyframe cannot be decoded")
        _ = avcodec_send_packet(context, nil)  // drain: this keyframe's picture comes out now
        try check(avcodec_receive_frame(context, frame), "avcodec_receive_frame", target: target, code: .invalidData, "the keyframe cannot be decoded")
        defer { av_frame_unref(frame) }
        let f = frame!.pointee
        guard f.width > 0, f.height > 0, f.width <= 16384, f.height <= 16384 else {
            throw MediaError(code: .invalidData, call: "avcodec_receive_frame", target: target, message: "a picture of \(f.width)×\(f.height)")
        }
        scaler = cff_sws_cached(scaler, f.width, f.height, AVPixelFormat(rawValue: f.format), Int32(width), Int32(height),
                                AV_PIX_FMT_GRAY8, cff_sws_area())
        guard let scaler else {
            throw MediaError(code: .other, call: "sws_getCachedContext", target: target, message: "cannot scale a \(f.width)×\(f.height) picture")
        }
        var pixels = [UInt8](repeating: 0, count: width * height)
        let rows = try pixels.withUnsafeMutableBufferPointer { (out) throws(MediaError) -> Int32 in
            var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
            var dstStride: [Int32] = [Int32(width), 0, 0, 0]
            return withUnsafePointer(to: &frame!.pointee.data) { src in
                withUnsafePointer(to: &frame!.pointee.linesize) { srcStride in
                    let s = src.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { $0 }
                    let ss = srcStride.withMemoryRebound(to: Int32.self, capacity: 8) { $0 }
                    return cff_sws_scale(scaler, s, ss, 0, f.height, &dst, &dstStride)
                }
            }
        }
        try check(rows, "sws_scale", target: target)
        return GreyPicture(width: width, height: height, pixels: pixels)
    }
}

extension KeyframeDecoder {
    /// Every keyframe of a recorded file as a grey picture, with its time (µs from the file's
    /// start), in order: the activity of footage already on the card, and the tests' check of
    /// the decoder against clips of known movement.
    public static func keyframes(inFile path: String, _ body: (Int64, GreyPicture) -> Void) throws(MediaError) {
        let reader = try SegmentReader(path: path)
        guard let video = reader.video else { throw MediaError(code: .noVideo, call: "keyframes", target: path, message: "no video") }
        let decoder = try KeyframeDecoder(codecpar: video.pointee.codecpar, target: path)
        try reader.keyframes(target: path) { (micros, _, packet) throws(MediaError) in
            body(micros, try decoder.grey(packet))
            return true
        }
    }

}

extension SegmentReader {
    /// Calls `body` with each video keyframe in file order: its time in µs from the stream's
    /// start, the stream's parameters and the packet; `body` returns false to stop.
    func keyframes(target: String, _ body: (Int64, UnsafePointer<AVCodecParameters>, UnsafeMutablePointer<AVPacket>) throws(MediaError) -> Bool) throws(MediaError) {
        guard let video else { throw MediaError(code: .noVideo, call: "keyframes", target: target, message: "no video") }
        var pkt = av_packet_alloc()
        defer { av_packet_free(&pkt) }
        let start = video.pointee.start_time == cff_nopts_value() ? 0 : video.pointee.start_time
        while true {
            let status = av_read_frame(context, pkt)
            if status == cff_averror_eof() { return }
            try check(status, "av_read_frame", target: target, code: .invalidData, "the file cannot be read")
            defer { av_packet_unref(pkt) }
            guard pkt!.pointee.stream_index == video.pointee.index, pkt!.pointee.flags & AV_PKT_FLAG_KEY != 0 else { continue }
            let pts = pkt!.pointee.pts == cff_nopts_value() ? pkt!.pointee.dts : pkt!.pointee.pts
            let micros = av_rescale_q(pts - start, video.pointee.time_base, cff_time_base_q())
            guard try body(micros, UnsafePointer(video.pointee.codecpar), pkt!) else { return }
        }
    }
}
