import CFFmpeg

/// What went wrong with a camera or a segment file, in terms the recorder's retry policy can
/// switch on and a technician can act on.
public struct MediaError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The camera could not be reached or went away: retry with backoff.
        case unavailable
        /// Opening or reading took longer than its deadline: retry.
        case timedOut
        /// The camera refused the user name or password (RTSP/HTTP 401/403): fix camera.url.
        case unauthenticated
        /// The camera has no stream at that path (404): fix camera.url.
        case notFound
        /// The stream has no video track.
        case noVideo
        /// The video codec cannot be stored without transcoding.
        case unsupportedCodec
        /// The stream ended (a camera that reboots does this): reconnect.
        case endOfStream
        /// The recorder asked the call to stop (shutdown).
        case cancelled
        /// The data filesystem is full.
        case storageFull
        /// Writing a segment file failed for another reason (read-only, I/O error).
        case storage
        /// Bad data from the camera.
        case invalidData
        /// Anything else FFmpeg reported.
        case other
    }

    public var code: Code
    /// The C function that failed, e.g. "avformat_open_input".
    public var call: String
    /// FFmpeg's status (a negative AVERROR), when there is one.
    public var status: Int32?
    /// The camera URL (password hidden) or file path involved.
    public var target: String
    public var message: String

    public init(code: Code, call: String, status: Int32? = nil, target: String, message: String) {
        self.code = code
        self.call = call
        self.status = status
        self.target = target
        self.message = message
    }

    public var description: String {
        var s = "\(message) [\(call)"
        if let status { s += ": \(Self.describe(status))" }
        return s + ", \(target)]"
    }

    /// Whether trying again soon can help. The rest need a person to change something (the
    /// recorder still retries them, slowly, since a camera may be reconfigured).
    public var isRetryable: Bool {
        switch code {
        case .unavailable, .timedOut, .endOfStream, .invalidData, .other, .storageFull, .storage: true
        case .unauthenticated, .notFound, .noVideo, .unsupportedCodec, .cancelled: false
        }
    }

    /// av_strerror's text for an FFmpeg status.
    public static func describe(_ status: Int32) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 128) { buf in
            String(cString: cff_err2str(status, buf.baseAddress, 128))
        }
    }
}

/// The one checking helper for FFmpeg calls that return a status: a negative status becomes a
/// typed `MediaError` naming the call, the AVERROR and the target.
@discardableResult
func check(_ status: Int32, _ call: String, target: String,
           code: MediaError.Code? = nil, _ message: @autoclosure () -> String = "") throws(MediaError) -> Int32 {
    guard status < 0 else { return status }
    let kind = code ?? classify(status)
    let text = message()
    throw MediaError(code: kind, call: call, status: status, target: target,
                     message: text.isEmpty ? defaultMessage(kind) : text)
}

func classify(_ status: Int32) -> MediaError.Code {
    switch status {
    case cff_averror_exit(): return .cancelled
    case cff_averror_eof(): return .endOfStream
    case cff_averror_http_unauthorized(), cff_averror_http_forbidden(): return .unauthenticated
    case cff_averror_http_not_found(): return .notFound
    case cff_averror_invaliddata(): return .invalidData
    case cff_averror(ENOSPC), cff_averror(EDQUOT): return .storageFull
    case cff_averror(EROFS), cff_averror(EIO), cff_averror(EACCES), cff_averror(EPERM): return .storage
    case cff_averror(ETIMEDOUT): return .timedOut
    case cff_averror(ECONNREFUSED), cff_averror(EHOSTUNREACH), cff_averror(ENETUNREACH),
         cff_averror(ECONNRESET), cff_averror(EPIPE), cff_averror(ENOTCONN), cff_averror(EAGAIN):
        return .unavailable
    default: return .other
    }
}

func defaultMessage(_ code: MediaError.Code) -> String {
    switch code {
    case .unavailable: "the camera cannot be reached: check its power, cable and address"
    case .timedOut: "the camera did not answer in time"
    case .unauthenticated: "the camera refused the user name or password: fix them in camera.url"
    case .notFound: "the camera has no stream at that address: check the path in camera.url"
    case .noVideo: "the stream has no video"
    case .unsupportedCodec: "the camera's video format cannot be recorded: set the camera to H.264 or H.265"
    case .endOfStream: "the camera closed the stream"
    case .cancelled: "stopped on request"
    case .storageFull: "the data filesystem is full"
    case .storage: "writing to the data filesystem failed"
    case .invalidData: "the camera sent data that cannot be read"
    case .other: "FFmpeg reported an error"
    }
}
