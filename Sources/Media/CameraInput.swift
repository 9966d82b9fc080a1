import CFFmpeg

/// A camera (or any URL libavformat opens: RTSP, HTTP, a file) opened for reading packets.
///
/// Owns one `AVFormatContext`; `deinit` calls `avformat_close_input`. Every blocking call runs
/// under the `Interrupter`'s deadline. Not thread-safe: one reading thread owns it; other
/// threads stop it through the interrupter.
public final class CameraInput {
    public struct Options: Sendable {
        public enum Transport: String, Sendable { case tcp, udp }
        /// What reads an rtsp:// camera over TCP: libavformat, or Junction's own RTSP client
        /// (`RTSPInput`, issue 25: H.264/H.265 and AAC over TCP). Other sources are always libavformat's.
        public enum Reader: String, Sendable { case ffmpeg, junction }
        public var url: String
        public var transport: Transport = .tcp
        public var reader: Reader = .ffmpeg
        public var connectTimeoutSeconds: Double = 10
        /// No packet for this long ends the read with `.timedOut`.
        public var stallSeconds: Double = 5
        /// Extra libavformat options, passed as they are.
        public var extra: [String: String] = [:]
        /// The URL as it may be shown (password hidden).
        public var displayURL: String

        public init(url: String, displayURL: String? = nil) {
            self.url = url
            self.displayURL = displayURL ?? url
        }
    }

    private var context: UnsafeMutablePointer<AVFormatContext>?
    private let interrupter: Interrupter
    let options: Options
    /// Input stream index → what the recorder does with it.
    private var kinds: [Packet.Kind]
    public let videoIndex: Int32
    public let audioIndex: Int32?

    public let info: StreamInfo
    /// Options the input did not use (a typo in `[camera.options]` should be seen).
    public let unusedOptions: [String]

    /// Opens the camera: connects, reads its description and probes its streams. Blocks for at
    /// most about `connectTimeoutSeconds`.
    public init(options: Options, interrupter: Interrupter) throws(MediaError) {
        self.options = options
        self.interrupter = interrupter
        let target = options.displayURL

        guard let ctx = avformat_alloc_context() else {
            throw MediaError(code: .other, call: "avformat_alloc_context", target: target, message: "out of memory")
        }
        ctx.pointee.interrupt_callback.callback = Interrupter.callback
        ctx.pointee.interrupt_callback.opaque = Unmanaged.passUnretained(interrupter).toOpaque()

        var dict: OpaquePointer? = nil
        defer { av_dict_free(&dict) }
        if options.url.hasPrefix("rtsp://") || options.url.hasPrefix("rtsps://") {
            av_dict_set(&dict, "rtsp_transport", options.transport.rawValue, 0)
            // Our own deadline does the work; this only helps FFmpeg give up sooner itself.
            av_dict_set(&dict, "timeout", String(Int64(options.stallSeconds * 2_000_000)), 0)
        }
        av_dict_set(&dict, "analyzeduration", "2000000", 0)
        av_dict_set(&dict, "probesize", "2000000", 0)
        for (k, v) in options.extra { av_dict_set(&dict, k, v, 0) }

        interrupter.arm(seconds: options.connectTimeoutSeconds)
        var opened: UnsafeMutablePointer<AVFormatContext>? = ctx
        let status = avformat_open_input(&opened, options.url, nil, &dict)
        if status < 0 {
            // avformat_open_input frees the context on failure.
            if interrupter.isStopped {
                throw MediaError(code: .cancelled, call: "avformat_open_input", status: status, target: target, message: "stopped on request")
            }
            if interrupter.fired {
                throw MediaError(code: .timedOut, call: "avformat_open_input", status: status, target: target,
                                 message: "the camera did not answer within \(Int(options.connectTimeoutSeconds)) s: check that it is on and that camera.url is its address")
            }
            try check(status, "avformat_open_input", target: target)
        }
        context = opened

        var unused: [String] = []
        var entry: UnsafeMutablePointer<AVDictionaryEntry>? = nil
        while let e = av_dict_get(dict, "", entry, AV_DICT_IGNORE_SUFFIX) {
            unused.append(String(cString: e.pointee.key))
            entry = e
        }
        unusedOptions = unused.filter { !["rtsp_transport", "timeout", "analyzeduration", "probesize"].contains($0) }

        interrupter.arm(seconds: options.connectTimeoutSeconds)
        let found = avformat_find_stream_info(opened, nil)
        if found < 0 {
            avformat_close_input(&context)
            if interrupter.fired {
                throw MediaError(code: .timedOut, call: "avformat_find_stream_info", status: found, target: target,
                                 message: "the camera connected but sent no usable video within \(Int(options.connectTimeoutSeconds)) s")
            }
            try check(found, "avformat_find_stream_info", target: target)
        }

        // Pick the video and audio streams and decide what is kept.
        let fmt = opened!
        let count = Int(fmt.pointee.nb_streams)
        var kinds = [Packet.Kind](repeating: .other, count: count)
        var video: Int32 = -1
        var audio: Int32? = nil
        var audioCodec: String? = nil
        var audioNote: String? = nil
        var videoInfo: (String, Int, Int, Double)? = nil
        var unsupportedVideo: String? = nil
        for i in 0..<count {
            guard let st = fmt.pointee.streams[i], let par = st.pointee.codecpar else { continue }
            let name = String(cString: avcodec_get_name(par.pointee.codec_id))
            switch par.pointee.codec_type {
            case AVMEDIA_TYPE_VIDEO where video < 0:
                guard [AV_CODEC_ID_H264, AV_CODEC_ID_HEVC, AV_CODEC_ID_MJPEG].contains(par.pointee.codec_id) else {
                    unsupportedVideo = name
                    continue
                }
                video = Int32(i)
                kinds[i] = .video
                let rate = st.pointee.avg_frame_rate.den != 0 ? st.pointee.avg_frame_rate : st.pointee.r_frame_rate
                let fps = rate.den != 0 ? Double(rate.num) / Double(rate.den) : 0
                videoInfo = (name, Int(par.pointee.width), Int(par.pointee.height), fps)
            case AVMEDIA_TYPE_AUDIO where audio == nil && audioCodec == nil:
                audioCodec = name
                if par.pointee.codec_id == AV_CODEC_ID_AAC {
                    audio = Int32(i)
                    kinds[i] = .audio
                } else {
                    audioNote = "\(name) audio cannot be stored in MP4 without transcoding; it is dropped (set the camera's audio to AAC to keep it)"
                }
            default:
                break
            }
        }
        guard let videoInfo else {
            avformat_close_input(&context)
            if let unsupportedVideo {
                throw MediaError(code: .unsupportedCodec, call: "avformat_find_stream_info", target: target,
                                 message: "the camera sends \(unsupportedVideo) video, which cannot be recorded without transcoding: set the camera to H.264 or H.265")
            }
            throw MediaError(code: .noVideo, call: "avformat_find_stream_info", target: target,
                             message: "the stream has no video track: check that camera.url names a video stream, not audio or metadata only")
        }
        self.kinds = kinds
        self.videoIndex = video
        self.audioIndex = audio
        self.info = StreamInfo(videoCodec: videoInfo.0, width: videoInfo.1, height: videoInfo.2, fps: videoInfo.3,
                               audioCodec: audioCodec, audioKept: audio != nil, audioNote: audioNote)
    }

    deinit {
        avformat_close_input(&context)
    }

    /// Reads the next packet into `packet` (after `packet.reset()`), waiting at most
    /// `stallSeconds`. Throws `.endOfStream` when the camera closes the stream and `.timedOut`
    /// when it stalls: for a camera both mean "reconnect".
    public func read(into packet: Packet) throws(MediaError) {
        packet.reset()
        interrupter.arm(seconds: options.stallSeconds)
        let status = av_read_frame(context, packet.raw)
        if status < 0 {
            if interrupter.isStopped {
                throw MediaError(code: .cancelled, call: "av_read_frame", status: status, target: options.displayURL, message: "stopped on request")
            }
            if interrupter.fired {
                throw MediaError(code: .timedOut, call: "av_read_frame", status: status, target: options.displayURL,
                                 message: "the camera stopped sending video for \(Int(options.stallSeconds)) s")
            }
            try check(status, "av_read_frame", target: options.displayURL)
        }
        let index = Int(packet.raw.pointee.stream_index)
        if index < kinds.count, let st = context?.pointee.streams[index] {
            packet.kind = kinds[index]
            packet.timeBase = st.pointee.time_base
        } else {
            packet.kind = .other
        }
    }

    /// Lends the streams that are recorded (video first, then kept audio) to `body`.
    /// The pointers are valid only inside the closure.
    public func withRecordedStreams<R>(_ body: ([UnsafeMutablePointer<AVStream>]) throws(MediaError) -> R) throws(MediaError) -> R {
        var streams: [UnsafeMutablePointer<AVStream>] = []
        if let ctx = context {
            streams.append(ctx.pointee.streams[Int(videoIndex)]!)
            if let a = audioIndex { streams.append(ctx.pointee.streams[Int(a)]!) }
        }
        return try body(streams)
    }
}
