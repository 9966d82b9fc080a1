import Activity
import CFFmpeg

/// One JPEG picture of the camera, for aiming and focusing: the next keyframe of the live
/// stream, or the keyframe at or before a moment of a recorded segment, decoded (libavcodec),
/// converted to full-range YUV (libswscale) and encoded as JPEG (libavcodec's MJPEG encoder).
/// Nothing is recorded or re-encoded for storage; this is a picture only.
public enum Snapshot {
    /// Silences FFmpeg's own log lines: command-line tools say what went wrong themselves.
    public static func quietFFmpegLogs() { av_log_set_level(AV_LOG_FATAL) }

    public struct Picture: Sendable {
        public var jpeg: [UInt8]
        public var width: Int
        public var height: Int
    }

    /// The next keyframe from a live camera (waits at most `seconds` for it).
    public static func live(_ input: CameraInput, seconds: Double = 10, zones: CellMask? = nil) throws(MediaError) -> Picture {
        let packet = Packet()
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            try input.read(into: packet)
            guard packet.kind == .video, packet.isKeyframe else { continue }
            return try input.withRecordedStreams { (streams) throws(MediaError) in
                try picture(codecpar: streams[0].pointee.codecpar, packet: packet.raw, target: input.options.displayURL, zones: zones)
            }
        }
        throw MediaError(code: .timedOut, call: "snapshot", target: input.options.displayURL,
                         message: "no keyframe from the camera within \(Int(seconds)) s")
    }

    /// The keyframe at or before `seconds` into a segment file.
    public static func recorded(segment path: String, atSeconds seconds: Double, zones: CellMask? = nil) throws(MediaError) -> Picture {
        let reader = try SegmentReader(path: path)
        guard let video = reader.video else { throw MediaError(code: .noVideo, call: "snapshot", target: path, message: "no video") }
        let pkt = av_packet_alloc()
        defer { var p = pkt; av_packet_free(&p) }
        let wanted = av_rescale_q(Int64(seconds * 1_000_000), cff_time_base_q(), video.pointee.time_base)
        var best: UnsafeMutablePointer<AVPacket>? = nil
        defer { av_packet_free(&best) }
        while true {
            let status = av_read_frame(reader.context, pkt)
            if status == cff_averror_eof() { break }
            try check(status, "av_read_frame", target: path, code: .invalidData, "the segment cannot be read")
            defer { av_packet_unref(pkt) }
            guard pkt!.pointee.stream_index == video.pointee.index, pkt!.pointee.flags & AV_PKT_FLAG_KEY != 0 else { continue }
            if best != nil && pkt!.pointee.pts > wanted { break }
            av_packet_free(&best)
            best = av_packet_clone(pkt)
        }
        guard let best else { throw MediaError(code: .invalidData, call: "snapshot", target: path, message: "the segment has no keyframe") }
        return try picture(codecpar: video.pointee.codecpar, packet: best, target: path, zones: zones)
    }

    /// Decodes one keyframe packet and encodes the picture as JPEG, with `zones` drawn over it.
    /// `width`: scaled to that many pixels across (height in proportion, even), else as decoded;
    /// `quality`: the JPEG quantiser, 2 (best) to 31.
    static func picture(codecpar: UnsafePointer<AVCodecParameters>, packet: UnsafeMutablePointer<AVPacket>,
                        target: String, zones: CellMask? = nil, width wanted: Int? = nil, quality: Int = 3) throws(MediaError) -> Picture {
        guard let decoder = avcodec_find_decoder(codecpar.pointee.codec_id) else {
            throw MediaError(code: .unsupportedCodec, call: "avcodec_find_decoder", target: target, message: "no decoder for this video")
        }
        var dec = avcodec_alloc_context3(decoder)
        defer { avcodec_free_context(&dec) }
        try check(avcodec_parameters_to_context(dec, codecpar), "avcodec_parameters_to_context", target: target)
        try check(avcodec_open2(dec, decoder, nil), "avcodec_open2", target: target)
        var frame = av_frame_alloc()
        defer { av_frame_free(&frame) }
        try check(avcodec_send_packet(dec, packet), "avcodec_send_packet", target: target, code: .invalidData, "the keyframe cannot be decoded")
        _ = avcodec_send_packet(dec, nil)  // flush: the keyframe's picture comes out now
        try check(avcodec_receive_frame(dec, frame), "avcodec_receive_frame", target: target, code: .invalidData, "the keyframe cannot be decoded")

        let sourceWidth = frame!.pointee.width, sourceHeight = frame!.pointee.height
        guard sourceWidth > 0, sourceHeight > 0, sourceWidth <= 16384, sourceHeight <= 16384 else {
            throw MediaError(code: .invalidData, call: "avcodec_receive_frame", target: target, message: "a picture of \(sourceWidth)×\(sourceHeight)")
        }
        var width = sourceWidth, height = sourceHeight
        if let wanted, wanted >= 16, wanted < Int(sourceWidth) {
            width = Int32(wanted / 2 * 2)
            height = max(2, Int32((Int(sourceHeight) * Int(width) / Int(sourceWidth) + 1) / 2 * 2))
        }
        guard let encoder = avcodec_find_encoder(AV_CODEC_ID_MJPEG) else {
            throw MediaError(code: .other, call: "avcodec_find_encoder", target: target, message: "FFmpeg has no JPEG encoder")
        }
        var enc = avcodec_alloc_context3(encoder)
        defer { avcodec_free_context(&enc) }
        enc!.pointee.width = width
        enc!.pointee.height = height
        enc!.pointee.pix_fmt = AV_PIX_FMT_YUVJ420P
        enc!.pointee.time_base = AVRational(num: 1, den: 25)
        enc!.pointee.flags |= AV_CODEC_FLAG_QSCALE
        enc!.pointee.global_quality = Int32(min(31, max(2, quality))) * FF_QP2LAMBDA  // 3 by default: a plate or a face must be readable
        try check(avcodec_open2(enc, encoder, nil), "avcodec_open2", target: target)

        var yuv = av_frame_alloc()
        defer { av_frame_free(&yuv) }
        yuv!.pointee.width = width
        yuv!.pointee.height = height
        yuv!.pointee.format = AV_PIX_FMT_YUVJ420P.rawValue
        try check(av_frame_get_buffer(yuv, 0), "av_frame_get_buffer", target: target)
        guard let sws = sws_getContext(sourceWidth, sourceHeight, AVPixelFormat(rawValue: frame!.pointee.format), width, height, AV_PIX_FMT_YUVJ420P,
                                       cff_sws_bicubic(), nil, nil, nil) else {
            throw MediaError(code: .other, call: "sws_getContext", target: target, message: "cannot convert the picture")
        }
        defer { sws_freeContext(sws) }
        try withUnsafePointer(to: &frame!.pointee.data) { (src) throws(MediaError) in
            try withUnsafePointer(to: &frame!.pointee.linesize) { (srcStride) throws(MediaError) in
                try withUnsafeMutablePointer(to: &yuv!.pointee.data) { (dst) throws(MediaError) in
                    try withUnsafeMutablePointer(to: &yuv!.pointee.linesize) { (dstStride) throws(MediaError) in
                        let s = src.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { $0 }
                        let ss = srcStride.withMemoryRebound(to: Int32.self, capacity: 8) { $0 }
                        let d = dst.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { $0 }
                        let ds = dstStride.withMemoryRebound(to: Int32.self, capacity: 8) { $0 }
                        try check(sws_scale(sws, s, ss, 0, sourceHeight, d, ds), "sws_scale", target: target)
                    }
                }
            }
        }
        if let zones { draw(zones, on: yuv!, width: Int(width), height: Int(height)) }
        try check(avcodec_send_frame(enc, yuv), "avcodec_send_frame", target: target)
        _ = avcodec_send_frame(enc, nil)
        var out = av_packet_alloc()
        defer { av_packet_free(&out) }
        try check(avcodec_receive_packet(enc, out), "avcodec_receive_packet", target: target)
        let jpeg = Array(UnsafeBufferPointer(start: out!.pointee.data, count: Int(out!.pointee.size)))
        return Picture(jpeg: jpeg, width: Int(width), height: Int(height))
    }

    /// Draws the activity grid (each cell's border darkened) and tints the zone's cells red, on
    /// a YUV 4:2:0 picture, with the detector's own mapping of pixels to cells: what the
    /// technician sees is what motion counts.
    static func draw(_ zones: CellMask, on frame: UnsafeMutablePointer<AVFrame>, width: Int, height: Int) {
        guard width >= 2, height >= 2, let luma = frame.pointee.data.0, let cb = frame.pointee.data.1, let cr = frame.pointee.data.2 else { return }
        let ys = Int(frame.pointee.linesize.0), us = Int(frame.pointee.linesize.1), vs = Int(frame.pointee.linesize.2)
        let columns = ActivityGrid.columns, rows = ActivityGrid.rows
        for cy in 0..<(height / 2) {
            let row = min(rows - 1, (cy * 2) * rows / height)
            for cx in 0..<(width / 2) {
                let cell = row * columns + min(columns - 1, (cx * 2) * columns / width)
                guard zones[cell] else { continue }
                cb[cy * us + cx] = UInt8((Int(cb[cy * us + cx]) + 90) / 2)
                cr[cy * vs + cx] = UInt8((Int(cr[cy * vs + cx]) + 240) / 2)
            }
        }
        let thickness = max(1, width / 640)
        for r in 1..<rows {
            let y0 = r * height / rows
            for y in y0..<min(height, y0 + thickness) {
                for x in 0..<width { luma[y * ys + x] /= 3 }
            }
        }
        for c in 1..<columns {
            let x0 = c * width / columns
            for y in 0..<height {
                for x in x0..<min(width, x0 + thickness) { luma[y * ys + x] /= 3 }
            }
        }
    }
}
