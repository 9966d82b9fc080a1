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
/// `audio: false` leaves the camera's audio out where the reader can (the sub-stream for
/// activity needs only its keyframes).
public func openCamera(_ options: CameraInput.Options, interrupter: Interrupter, audio: Bool = true) throws(MediaError) -> any CameraSource {
    if options.reader == .junction, options.transport == .tcp, options.url.lowercased().hasPrefix("rtsp://") {
        return try RTSPInput(url: options.url, displayURL: options.displayURL, connectTimeoutSeconds: options.connectTimeoutSeconds,
                             stallSeconds: options.stallSeconds, interrupter: interrupter, extra: options.extra, audio: audio)
    }
    return try CameraInput(options: options, interrupter: interrupter)
}

/// A camera read by Junction's own RTSP client (issue 25, `RTSP/`) instead of libavformat:
/// the same packets a `CameraInput` gives (Annex B access units, 90 kHz presentation times,
/// decode times by `DecodeTimeline`), and codec parameters made from the parameter sets the
/// camera sent, with the picture size read by FFmpeg's own parser from the first keyframe; and
/// the camera's AAC audio when it sends some, as a second stream (1/sample-rate time base).
///
/// The two tracks' RTP clocks start at random values. The audio is put on the video's timeline
/// once the camera's RTCP sender reports for both tracks have come (each maps its RTP clock to
/// the camera's one wall clock, as libavformat syncs them); the audio that came before is held
/// (at most `maxHeldAudioFrames`) and placed with it. A camera that sends no reports within
/// `audioSyncSeconds` of its first audio gets its audio placed by arrival: the frame taken as
/// as old as the last picture read then (off by however far apart the camera sends its tracks).
public final class RTSPInput: CameraSource {
    public let info: StreamInfo
    public let displayURL: String
    /// libavformat's options mean nothing to this reader: all of them are reported unused.
    public let unusedOptions: [String]
    public let videoIndex: Int32 = 0
    public let audioIndex: Int32?
    public let connection: RTSPConnection
    /// The audio's sample rate, and the RTP timestamp of its first frame with the video time
    /// (90 kHz) it was put at.
    private let audioRate: Int64
    private var audioAnchor: (rtp: Int64, video: Int64)?
    private var firstAudio: ContinuousClock.Instant?
    private var lastVideo: Int64 = 0
    /// How long audio waits for both sender reports before it is placed by arrival.
    public static let audioSyncSeconds = 3
    public static let maxHeldAudioFrames = 512
    /// Audio that came before it could be placed, then (once placed) what is to be handed on.
    private var heldAudio: [AACDepacketizer.Frame] = []
    private var placedAudio: [AACDepacketizer.Frame] = []
    /// Whether the audio was placed by the sender reports (false: by arrival; nil: not yet).
    public private(set) var audioSyncedByReports: Bool?
    /// Holds the streams' codec parameters and time bases; never opened or read.
    private var context: UnsafeMutablePointer<AVFormatContext>?
    private var timeline = DecodeTimeline()
    private var first: VideoDepacketizer.AccessUnit?
    private let target: String

    /// Connects, sets the session up and reads up to the first keyframe (at most 600 pictures).
    public init(url: String, displayURL: String, connectTimeoutSeconds: Double = 10, stallSeconds: Double = 5,
                interrupter: Interrupter, extra: [String: String] = [:], audio: Bool = true) throws(MediaError) {
        target = displayURL
        self.displayURL = displayURL
        unusedOptions = extra.keys.sorted()
        var options = RTSPConnection.Options(url: url)
        options.connectTimeoutSeconds = connectTimeoutSeconds
        options.stallSeconds = stallSeconds
        options.audio = audio
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
        if let a = connection.audio, let aac = connection.audioDepacketizer, let rate = a.clockRate {
            guard let ast = avformat_new_stream(ctx, nil), let apar = ast.pointee.codecpar,
                  let config = av_mallocz(aac.config.count + Int(AV_INPUT_BUFFER_PADDING_SIZE)) else {
                throw MediaError(code: .other, call: "avformat_new_stream", target: displayURL, message: "out of memory")
            }
            aac.config.withUnsafeBytes { config.copyMemory(from: $0.baseAddress!, byteCount: aac.config.count) }
            apar.pointee.codec_type = AVMEDIA_TYPE_AUDIO
            apar.pointee.codec_id = AV_CODEC_ID_AAC
            apar.pointee.extradata = config.assumingMemoryBound(to: UInt8.self)
            apar.pointee.extradata_size = Int32(aac.config.count)
            apar.pointee.sample_rate = Int32(rate)
            apar.pointee.frame_size = Int32(aac.samplesPerFrame)
            av_channel_layout_default(&apar.pointee.ch_layout, Int32(Self.channels(sdp: a.channels, config: aac.config)))
            ast.pointee.time_base = AVRational(num: 1, den: Int32(rate))
            audioIndex = 1
            audioRate = Int64(rate)
        } else {
            audioIndex = nil
            audioRate = 0
        }
        let offered = connection.sdp?.media.first { $0.kind == "audio" }
        let audioName = connection.audio != nil ? "aac" : offered.map { RTSPConnection.codecName(rtpEncoding: $0.encoding) }
        info = StreamInfo(videoCodec: d.codec == .h264 ? "h264" : "hevc", width: width, height: height, fps: 0,
                          audioCodec: audioName, audioKept: audioIndex != nil, audioNote: connection.audioNote)
    }

    /// The channel count: the SDP's, else the AudioSpecificConfig's channel configuration
    /// (ISO 14496-3 §1.6.2.1: 5 bits object type, 4 bits frequency index, 4 bits channels), else 1.
    static func channels(sdp: Int?, config: [UInt8]) -> Int {
        if let sdp { return sdp }
        guard config.count >= 2, config[0] >> 3 != 31 else { return 1 }
        let c = Int((config[1] >> 3) & 0x0F)
        return (1...7).contains(c) ? (c == 7 ? 8 : c) : 1
    }

    deinit {
        connection.close()
        avformat_free_context(context)
    }

    /// The next access unit or AAC frame as a packet (the first keyframe, read while opening,
    /// comes first).
    public func read(into packet: Packet) throws(MediaError) {
        packet.reset()
        if !placedAudio.isEmpty { return try fill(packet, audio: placedAudio.removeFirst()) }
        var picture = first
        first = nil
        while picture == nil {
            let unit: RTSPConnection.Unit
            do throws(RTSPError) { unit = try connection.nextUnit() } catch {
                throw Self.mediaError(error, target: target, stopped: false)
            }
            switch unit {
            case .video(let v): picture = v
            case .audio(let frame): if try audio(frame, into: packet) { return }
            }
        }
        let au = picture!
        lastVideo = au.timestamp
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

    /// Fills `packet` with an AAC frame on the video's timeline; false while the audio waits for
    /// its place (the frame is held).
    private func audio(_ frame: AACDepacketizer.Frame, into packet: Packet) throws(MediaError) -> Bool {
        guard audioAnchor == nil else { try fill(packet, audio: frame); return true }
        if heldAudio.count == Self.maxHeldAudioFrames { heldAudio.removeFirst() }
        heldAudio.append(frame)
        if let v = connection.senderReport, let a = connection.audioSenderReport,
           let at = Self.videoTime(audio: frame.timestamp, rate: audioRate, audioReport: a, video: lastVideo, videoReport: v) {
            audioAnchor = (frame.timestamp, at)
            audioSyncedByReports = true
        } else {
            let now = ContinuousClock.now
            let since = firstAudio ?? now
            firstAudio = since
            guard now - since >= .seconds(Self.audioSyncSeconds) else { return false }
            audioAnchor = (frame.timestamp, lastVideo)
            audioSyncedByReports = false
        }
        // Placed: what was held goes first, each by its own RTP time against the anchor.
        placedAudio = heldAudio
        heldAudio = []
        try fill(packet, audio: placedAudio.removeFirst())
        return true
    }

    private func fill(_ packet: Packet, audio frame: AACDepacketizer.Frame) throws(MediaError) {
        let anchor = audioAnchor!
        guard av_new_packet(packet.raw, Int32(frame.data.count)) >= 0 else {
            throw MediaError(code: .other, call: "av_new_packet", target: target, message: "out of memory")
        }
        frame.data.withUnsafeBytes { packet.raw.pointee.data.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: $0.count) }
        // On the video's timeline, in the audio's own time base (bounded: the timestamps are the
        // unwrapped 64-bit RTP clocks, so the subtraction cannot overflow in a camera's life).
        let pts = (frame.timestamp &- anchor.rtp) &+ anchor.video &* audioRate / 90_000
        packet.raw.pointee.pts = pts
        packet.raw.pointee.dts = pts
        packet.raw.pointee.duration = Int64(connection.audioDepacketizer?.samplesPerFrame ?? 1024)
        packet.raw.pointee.stream_index = 1
        packet.raw.pointee.flags |= AV_PKT_FLAG_KEY
        packet.kind = .audio
        packet.timeBase = AVRational(num: 1, den: Int32(audioRate))
    }

    /// The video time (90 kHz, on the video's 64-bit timeline) of the audio timestamp `audio`,
    /// by the two tracks' sender reports and the video timestamp `video` read last: each report
    /// gives its track's RTP time at one instant of the camera's wall clock. Nil when the reports
    /// put the two more than 10 s apart (a camera whose reports are not on one clock).
    static func videoTime(audio: Int64, rate: Int64, audioReport: RTCPSenderReport, video: Int64, videoReport: RTCPSenderReport) -> Int64? {
        guard rate > 0 else { return nil }
        // Each timestamp against its report's, as the nearest 32-bit difference.
        let dA = Double(Int32(bitPattern: UInt32(truncatingIfNeeded: audio) &- audioReport.rtpTimestamp)) / Double(rate)
        let dV = Double(Int32(bitPattern: UInt32(truncatingIfNeeded: video) &- videoReport.rtpTimestamp)) / 90_000
        let reports = Double(Int64(bitPattern: audioReport.ntp &- videoReport.ntp)) / 4_294_967_296
        // Seconds from the picture at `video` to the audio frame, on the camera's wall clock.
        let apart = reports + dA - dV
        guard apart.isFinite, abs(apart) <= 10 else { return nil }
        return video &+ Int64((apart * 90_000).rounded())
    }

    public func withRecordedStreams<R>(_ body: ([UnsafeMutablePointer<AVStream>]) throws(MediaError) -> R) throws(MediaError) -> R {
        guard let ctx = context, let st = ctx.pointee.streams[0] else { return try body([]) }
        if audioIndex != nil, ctx.pointee.nb_streams > 1, let ast = ctx.pointee.streams[1] { return try body([st, ast]) }
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
