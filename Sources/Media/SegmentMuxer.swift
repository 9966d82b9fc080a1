import CFFmpeg
import Evidence
#if canImport(Glibc)
import Glibc
#endif

/// Writes one fragmented-MP4 segment file from a camera's packets, without transcoding.
///
/// One fragment per GOP or per ≤ 1 s (`frag_keyframe`, `frag_duration`), `empty_moov` so the
/// file is playable from its first fragment on and a torn file can be cut back to its last whole
/// fragment. Output goes through a custom AVIO into a `FileSink` that hashes while it writes.
/// Each fragment is made durable as soon as it is whole (`FileSink.syncInBackground`), so a
/// power cut loses at most the fragment being written: ≤ 1 s of video plus the sync in flight.
/// Owns its `AVFormatContext` and `AVIOContext`; `deinit` frees them.
public final class SegmentMuxer {
    public struct Finished: Sendable {
        public var path: String
        public var bytes: Int64
        public var sha256: String
        /// The SHA-256 of each piece (header, then each fragment) and the hasher to go on with:
        /// the ring seals the segment and appends the seal (`Evidence`).
        public var pieces: [String]
        public var hasher: PieceHasher
        /// Camera time of the first video packet and of the end of the last one, in µs.
        public var firstMicroseconds: Int64
        public var endMicroseconds: Int64
        public var videoPackets: Int
        public var droppedPackets: Int
        /// False when `finish(sync: false)` left the last fdatasync to the caller.
        public var durable: Bool
        public var durationSeconds: Double { Double(endMicroseconds - firstMicroseconds) / 1e6 }
    }

    private var output: UnsafeMutablePointer<AVFormatContext>?
    private var io: UnsafeMutablePointer<AVIOContext>?
    private let sink: FileSink
    private let sinkRef: Unmanaged<FileSink>
    private let path: String
    /// Per input stream index: output index (-1: not recorded), time bases, last DTS written.
    private var outIndex: [Int32]
    private var inTimeBase: [AVRational]
    private var outTimeBase: [AVRational]
    private var originOut: [Int64]
    private var lastDTS: [Int64]
    private let videoInput: Int32
    private let syncFragments: Bool
    private let originMicroseconds: Int64
    private var firstVideo: Int64?
    private var lastVideo: Int64 = 0
    private var lastVideoDuration: Int64 = 0
    private var videoPackets = 0
    private var dropped = 0
    private var finished = false

    /// The longest fragment: what a power cut may lose, besides the sync in flight.
    public static let maxFragmentMicroseconds = 1_000_000

    /// Creates `path` and writes the file header (ftyp + moov).
    /// - Parameters:
    ///   - originMicroseconds: camera time that becomes 0 in the file's timeline. The recorder
    ///     uses one origin for a whole connection, so segments are continuous.
    ///   - comment: stored in the file's metadata; the ring keeps the facts needed to rebuild
    ///     its index from the files alone there.
    ///   - syncFragments: fdatasync each whole fragment as it is written (off this thread); false:
    ///     only `finish()` makes the file durable.
    public init(path: String, input: some RecordedStreamSource, originMicroseconds: Int64, comment: String,
                syncFragments: Bool = true, bufferSize: Int = 256 << 10) throws(MediaError) {
        self.path = path
        sink = try FileSink(path: path)
        sinkRef = Unmanaged.passRetained(sink)
        videoInput = input.videoIndex
        self.originMicroseconds = originMicroseconds
        self.syncFragments = syncFragments
        let nStreams = Int(max(input.videoIndex, input.audioIndex ?? 0)) + 1
        outIndex = Array(repeating: -1, count: nStreams)
        inTimeBase = Array(repeating: AVRational(num: 1, den: 1), count: nStreams)
        outTimeBase = inTimeBase
        originOut = Array(repeating: 0, count: nStreams)
        lastDTS = Array(repeating: Int64.min, count: nStreams)

        var ctx: UnsafeMutablePointer<AVFormatContext>? = nil
        do throws(MediaError) {
            try check(avformat_alloc_output_context2(&ctx, nil, "mp4", nil), "avformat_alloc_output_context2", target: path)
            output = ctx
            try input.withRecordedStreams { (streams) throws(MediaError) in
                for (n, ist) in streams.enumerated() {
                    guard let ost = avformat_new_stream(ctx, nil) else {
                        throw MediaError(code: .other, call: "avformat_new_stream", target: path, message: "out of memory")
                    }
                    try check(avcodec_parameters_copy(ost.pointee.codecpar, ist.pointee.codecpar), "avcodec_parameters_copy", target: path)
                    ost.pointee.codecpar.pointee.codec_tag = 0
                    if ost.pointee.codecpar.pointee.codec_id == AV_CODEC_ID_HEVC {
                        // Apple players and browsers want hvc1 (parameter sets in the sample entry).
                        ost.pointee.codecpar.pointee.codec_tag = cff_mktag(0x68, 0x76, 0x63, 0x31)
                    }
                    ost.pointee.time_base = ist.pointee.time_base
                    let i = Int(ist.pointee.index)
                    outIndex[i] = Int32(n)
                    inTimeBase[i] = ist.pointee.time_base
                }
            }

            guard let buffer = av_malloc(bufferSize) else {
                throw MediaError(code: .other, call: "av_malloc", target: path, message: "out of memory")
            }
            // The callback is written where the header gives its type: FFmpeg 7 made the
            // buffer `const uint8_t *`, FFmpeg 5.1 has `uint8_t *`; both convert to a raw buffer.
            io = avio_alloc_context(buffer.assumingMemoryBound(to: UInt8.self), Int32(bufferSize), 1,
                                    sinkRef.toOpaque(), nil, { opaque, buf, size in
                                        guard let opaque, let buf, size > 0 else { return 0 }
                                        let sink = Unmanaged<FileSink>.fromOpaque(opaque).takeUnretainedValue()
                                        let r = sink.write(UnsafeRawBufferPointer(start: buf, count: Int(size)))
                                        return r < 0 ? cff_averror(-r) : size
                                    }, nil)
            guard io != nil else {
                av_free(buffer)
                throw MediaError(code: .other, call: "avio_alloc_context", target: path, message: "out of memory")
            }
            ctx!.pointee.pb = io
            ctx!.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
            av_dict_set(&ctx!.pointee.metadata, "comment", comment, 0)

            var opts: OpaquePointer? = nil
            defer { av_dict_free(&opts) }
            av_dict_set(&opts, "movflags", "frag_keyframe+empty_moov+default_base_moof+skip_trailer", 0)
            av_dict_set(&opts, "frag_duration", String(Self.maxFragmentMicroseconds), 0)
            try check(avformat_write_header(ctx, &opts), "avformat_write_header", target: path,
                      "cannot start the segment file")
            // ftyp + moov to the file now, so every later write is a fragment.
            avio_flush(io)
            try check(io!.pointee.error, "write", target: path)
            for i in 0..<nStreams where outIndex[i] >= 0 {
                let tb = ctx!.pointee.streams[Int(outIndex[i])]!.pointee.time_base
                outTimeBase[i] = tb
                originOut[i] = av_rescale_q(originMicroseconds, cff_time_base_q(), tb)
            }
        } catch {
            release()
            sink.abandon()
            unlink(path)
            throw error
        }
    }

    deinit {
        if !finished { sink.abandon() }
        release()
    }

    private func release() {
        if let o = output {
            o.pointee.pb = nil
            avformat_free_context(o)
            output = nil
        }
        if io != nil {
            av_freep(&io!.pointee.buffer)
            avio_context_free(&io)
        }
        if !finished { finished = true; sinkRef.release() }
    }

    /// Writes one packet (video or kept audio; others are ignored) and releases its data.
    /// Packets without timestamps, from before the origin, or whose DTS does not increase are
    /// dropped and counted, never passed to the muxer (which would fail the whole file).
    public func write(_ packet: Packet) throws(MediaError) {
        let pkt = packet.raw
        defer { av_packet_unref(pkt) }
        let i = Int(pkt.pointee.stream_index)
        guard i < outIndex.count, outIndex[i] >= 0 else { return }
        var dts = pkt.pointee.dts != cff_nopts_value() ? pkt.pointee.dts : pkt.pointee.pts
        guard dts != cff_nopts_value() else { dropped += 1; return }
        let inTB = inTimeBase[i], outTB = outTimeBase[i]
        dts = av_rescale_q(dts, inTB, outTB) - originOut[i]
        var pts = pkt.pointee.pts != cff_nopts_value() ? av_rescale_q(pkt.pointee.pts, inTB, outTB) - originOut[i] : dts
        if pts < dts { pts = dts }
        guard dts >= 0 || Int32(i) == videoInput, dts > lastDTS[i] else { dropped += 1; return }
        lastDTS[i] = dts
        pkt.pointee.dts = dts
        pkt.pointee.pts = pts
        pkt.pointee.duration = av_rescale_q(pkt.pointee.duration, inTB, outTB)
        pkt.pointee.stream_index = outIndex[i]
        pkt.pointee.pos = -1
        // Camera time up to which the video written so far reaches (before this packet).
        let videoEnd = lastVideo + lastVideoDuration + originMicroseconds
        if Int32(i) == videoInput {
            let micros = av_rescale_q(dts, outTB, cff_time_base_q())
            if firstVideo == nil { firstVideo = micros }
            if videoPackets > 0 { lastVideoDuration = micros - lastVideo }
            lastVideo = micros
            videoPackets += 1
        }
        let before = sink.bytes
        var status = av_write_frame(output, pkt)
        if status >= 0 {
            // The muxer keeps the open fragment in memory and writes it whole when this packet
            // starts the next one; flushing sends it to the file at once (a no-op otherwise),
            // and the sink then makes it durable off this thread.
            avio_flush(io)
            if io!.pointee.error < 0 { status = io!.pointee.error }
            // The header went out in init: every write here is a whole fragment.
            if status >= 0, syncFragments, sink.bytes > before { sink.syncInBackground(mark: videoEnd) }
        }
        if status < 0 {
            if sink.failure != 0 {
                try check(-sink.failure, "write", target: path)
            }
            try check(status, "av_write_frame", target: path)
        }
    }

    /// Writes the last fragment, makes the file durable and returns what the index needs.
    /// Writes the trailer and closes the file; `sync` false leaves its last `fdatasync` (and
    /// the directory's) to the caller, who appends the seal first.
    public func finish(sync: Bool = true) throws(MediaError) -> Finished {
        precondition(!finished, "SegmentMuxer.finish called twice")
        try check(av_write_trailer(output), "av_write_trailer", target: path)
        avio_flush(io)
        let hasher = try sink.finish(sync: sync)
        let (sha, pieces) = hasher.finish()
        let origin = originMicroseconds
        let first = (firstVideo ?? 0) + origin
        let result = Finished(path: path, bytes: sink.bytes, sha256: sha, pieces: pieces, hasher: hasher,
                              firstMicroseconds: first,
                              endMicroseconds: lastVideo + origin + lastVideoDuration,
                              videoPackets: videoPackets, droppedPackets: dropped, durable: sync)
        release()
        return result
    }

    public var bytesWritten: Int64 { sink.bytes }
    /// Bytes of this file known to be on the card (whole fragments, fdatasync returned).
    public var bytesDurable: Int64 { sink.durable.bytes }
    /// Camera time (µs) up to which this file's video is on the card; nil before its first
    /// fragment is.
    public var durableEndMicroseconds: Int64? { sink.durable.mark }
    public var packetsWritten: Int { videoPackets }
}
