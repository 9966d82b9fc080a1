import CFFmpeg
import RTSP

/// What `SegmentMuxer` needs of an input: the recorded streams' codec parameters and time
/// bases, and which index is the video.
public protocol RecordedStreamSource: AnyObject {
    var videoIndex: Int32 { get }
    var audioIndex: Int32? { get }
    func withRecordedStreams<R>(_ body: ([UnsafeMutablePointer<AVStream>]) throws(MediaError) -> R) throws(MediaError) -> R
}

/// A camera being read: what the recorder, snapshot and activity need of it.
public protocol CameraSource: RecordedStreamSource {
    var info: StreamInfo { get }
    /// `[camera.options]` the reader did not use (a typo should be seen).
    var unusedOptions: [String] { get }
    var displayURL: String { get }
    func read(into packet: Packet) throws(MediaError)
}

extension CameraInput: CameraSource {
    public var displayURL: String { options.displayURL }
}

/// Opens the camera with the reader `options` names: Junction's own for rtsp:// over TCP when
/// asked (`reader = junction`), libavformat for everything else.
public func openCamera(_ options: CameraInput.Options, interrupter: Interrupter) throws(MediaError) -> any CameraSource {
    if options.reader == .junction, options.transport == .tcp, options.url.lowercased().hasPrefix("rtsp://") {
        return try RTSPInput(url: options.url, displayURL: options.displayURL, connectTimeoutSeconds: options.connectTimeoutSeconds,
                             stallSeconds: options.stallSeconds, interrupter: interrupter, extra: options.extra)
    }
    return try CameraInput(options: options, interrupter: interrupter)
}

/// A camera read by Junction's own RTSP client (issue 25, `RTSP/`) instead of libavformat:
/// the same packets a `CameraInput` gives (Annex B access units, 90 kHz presentation times,
/// decode times by `DecodeTimeline`), and codec parameters made from the parameter sets the
/// camera sent, with the picture size read by FFmpeg's own parser from the first keyframe.
/// Video only so far (audio stays on libavformat's path). Not yet what the recorder opens.
public final class RTSPInput: CameraSource {
    public let info: StreamInfo
    public let displayURL: String
    /// libavformat's options mean nothing to this reader: all of them are reported unused.
    public let unusedOptions: [String]
    public let videoIndex: Int32 = 0
    public let audioIndex: Int32? = nil
    public let connection: RTSPConnection
    /// Holds the one stream's codec parameters and time base; never opened or read.
    private var context: UnsafeMutablePointer<AVFormatContext>?
    private var timeline = DecodeTimeline()
    private var first: VideoDepacketizer.AccessUnit?
    private let target: String

    /// Connects, sets the session up and reads up to the first keyframe (at most 600 pictures).
    public init(url: String, displayURL: String, connectTimeoutSeconds: Double = 10, stallSeconds: Double = 5,
                interrupter: Interrupter, extra: [String: String] = [:]) throws(MediaError) {
        target = displayURL
        self.displayURL = displayURL
        unusedOptions = extra.keys.sorted()
        var options = RTSPConnection.Options(url: url)
        options.connectTimeoutSeconds = connectTimeoutSeconds
        options.stallSeconds = stallSeconds
        do throws(RTSPError) {
            connection = try RTSPConnection(options: options, shouldStop: { interrupter.isStopped })
            var au = try connection.next()
            var skipped = 0
            while !au.isKeyframe {
                skipped += 1
                guard skipped < 600 else {
                    throw RTSPError("the camera sent 600 pictures without a keyframe: set its keyframe interval (GOP) to 2 s or less")
                }
                au = try connection.next()
            }
            first = au
        } catch {
            throw Self.mediaError(error, target: displayURL, stopped: interrupter.isStopped)
        }
        let d = connection.depacketizer
        let codec = d.codec == .h264 ? AV_CODEC_ID_H264 : AV_CODEC_ID_HEVC
        let sets = (d.codec == .h265 ? [d.vps, d.sps, d.pps] : [d.sps, d.pps]).compactMap { $0 }
        guard sets.count == (d.codec == .h265 ? 3 : 2) else {
            throw MediaError(code: .invalidData, call: "rtsp", target: displayURL,
                             message: "the camera sent no parameter sets (SPS/PPS) before its first keyframe")
        }
        let extradata = Self.annexB(sets)
        let (width, height) = Self.pictureSize(codec: codec, data: extradata + first!.annexB)
        guard let ctx = avformat_alloc_context(), let st = avformat_new_stream(ctx, nil), let par = st.pointee.codecpar,
              let extra = av_mallocz(extradata.count + Int(AV_INPUT_BUFFER_PADDING_SIZE)) else {
            throw MediaError(code: .other, call: "avformat_alloc_context", target: displayURL, message: "out of memory")
        }
        context = ctx
        extradata.withUnsafeBytes { extra.copyMemory(from: $0.baseAddress!, byteCount: extradata.count) }
        par.pointee.codec_type = AVMEDIA_TYPE_VIDEO
        par.pointee.codec_id = codec
        par.pointee.extradata = extra.assumingMemoryBound(to: UInt8.self)
        par.pointee.extradata_size = Int32(extradata.count)
        par.pointee.width = Int32(width)
        par.pointee.height = Int32(height)
        st.pointee.time_base = AVRational(num: 1, den: 90_000)
        info = StreamInfo(videoCodec: d.codec == .h264 ? "h264" : "hevc", width: width, height: height, fps: 0,
                          audioCodec: nil, audioKept: false, audioNote: nil)
    }

    deinit {
        connection.close()
        avformat_free_context(context)
    }

    /// The next access unit as a packet (the first keyframe, read while opening, comes first).
    public func read(into packet: Packet) throws(MediaError) {
        packet.reset()
        let au: VideoDepacketizer.AccessUnit
        if let f = first {
            au = f
            first = nil
        } else {
            do throws(RTSPError) { au = try connection.next() } catch {
                throw Self.mediaError(error, target: target, stopped: false)
            }
        }
        // The depacketizer built the picture in Annex B form: one copy into FFmpeg's buffer.
        guard av_new_packet(packet.raw, Int32(au.annexB.count)) >= 0 else {
            throw MediaError(code: .other, call: "av_new_packet", target: target, message: "out of memory")
        }
        au.annexB.withUnsafeBytes { packet.raw.pointee.data.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: $0.count) }
        packet.raw.pointee.pts = au.timestamp
        packet.raw.pointee.dts = timeline.decodeTime(pts: au.timestamp)
        packet.raw.pointee.stream_index = 0
        if au.isKeyframe { packet.raw.pointee.flags |= AV_PKT_FLAG_KEY }
        packet.kind = .video
        packet.timeBase = AVRational(num: 1, den: 90_000)
    }

    public func withRecordedStreams<R>(_ body: ([UnsafeMutablePointer<AVStream>]) throws(MediaError) -> R) throws(MediaError) -> R {
        guard let ctx = context, let st = ctx.pointee.streams[0] else { return try body([]) }
        return try body([st])
    }

    static func annexB(_ nals: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nals.reduce(0) { $0 + $1.count + 4 })
        for n in nals { out += [0, 0, 0, 1]; out += n }
        return out
    }

    /// The picture size FFmpeg's parser reads from parameter sets and a keyframe (0×0 if none).
    static func pictureSize(codec: AVCodecID, data: [UInt8]) -> (Int, Int) {
        guard let parser = cff_parser_init(codec) else { return (0, 0) }
        defer { av_parser_close(parser) }
        var ctx = avcodec_alloc_context3(nil)
        defer { avcodec_free_context(&ctx) }
        parser.pointee.flags |= PARSER_FLAG_COMPLETE_FRAMES
        var padded = data + [UInt8](repeating: 0, count: Int(AV_INPUT_BUFFER_PADDING_SIZE))
        var out: UnsafeMutablePointer<UInt8>?
        var outSize: Int32 = 0
        _ = padded.withUnsafeMutableBufferPointer {
            av_parser_parse2(parser, ctx, &out, &outSize, $0.baseAddress, Int32(data.count), cff_nopts_value(), cff_nopts_value(), 0)
        }
        return (Int(parser.pointee.width), Int(parser.pointee.height))
    }

    static func mediaError(_ e: RTSPError, target: String, stopped: Bool) -> MediaError {
        let code: MediaError.Code
        switch stopped ? .stopped : e.kind {
        case .stopped: code = .cancelled
        case .stalled: code = .timedOut
        case .closed: code = .endOfStream
        case .unreachable: code = .unavailable
        case .unauthenticated: code = .unauthenticated
        case .invalid: code = .invalidData
        }
        return MediaError(code: code, call: "rtsp", target: target, message: e.message)
    }
}
