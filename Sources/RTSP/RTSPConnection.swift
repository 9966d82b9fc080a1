#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// One RTSP session with a camera over TCP, blocking, for the capture thread: DESCRIBE (signing
/// in when the camera answers 401), SETUP of the video track with RTP interleaved on the same
/// connection, PLAY, then access units from `next()`, read from the socket in 64 KiB pieces (one
/// read returns dozens of RTP packets where libavformat makes a poll and three recvs for each).
/// A GET_PARAMETER (or OPTIONS, when the camera lists no GET_PARAMETER) keeps the session alive
/// at half its timeout; `close()` says TEARDOWN. Every wait is cut into 200 ms slices that check
/// `shouldStop`, and bounded by `stallSeconds` without a byte from the camera.
public final class RTSPConnection {
    public struct Options: Sendable {
        public var url: String
        public var connectTimeoutSeconds: Double = 10
        /// No byte from the camera for this long ends the session.
        public var stallSeconds: Double = 10
        public var userAgent = "junction"
        /// Set up the camera's AAC track too, when it has one (the sub-stream for activity
        /// does not).
        public var audio = true

        public init(url: String) { self.url = url }
    }

    public let options: Options
    public private(set) var sdp: SessionDescription?
    public private(set) var video: SessionDescription.Media?
    public private(set) var depacketizer: VideoDepacketizer
    /// The camera's AAC track, when it has one and `options.audio` asks for it: set up on the
    /// same connection (interleaved 2-3), its frames from `nextUnit()`.
    public private(set) var audio: SessionDescription.Media?
    public private(set) var audioDepacketizer: AACDepacketizer?
    /// Why the camera's audio is not read, when it sends some.
    public private(set) var audioNote: String?
    /// recv() calls made: what the benchmark compares with libavformat's.
    public private(set) var reads = 0
    public private(set) var bytesRead: Int64 = 0
    /// The camera's last RTCP sender report for the video: its clock at one RTP timestamp.
    public private(set) var senderReport: RTCPSenderReport?
    public private(set) var senderReports = 0
    /// The same for the audio track, when one is set up: with both, the two RTP clocks are on
    /// the camera's one wall clock (how audio is put beside the video).
    public private(set) var audioSenderReport: RTCPSenderReport?

    private let address: Address
    private let shouldStop: @Sendable () -> Bool
    private var fd: Int32 = -1
    private var reader = InterleavedReader()
    private var cseq = 0
    private var auth: RTSPAuthentication?
    private var session: RTSPSession?
    private var videoChannel: UInt8 = 0
    private var controlChannel: UInt8 = 1
    private var keepAliveMethod = "GET_PARAMETER"
    private var lastKeepAlive = Clock.now
    private var pending: [Unit] = []
    /// `video`'s payload type, kept apart: read for every packet.
    private var videoPayloadType: UInt8?
    private var audioChannel: UInt8?
    private var audioControlChannel: UInt8?
    private var audioPayloadType: UInt8?

    /// What `nextUnit()` hands back: a picture, or an AAC frame.
    public enum Unit: Sendable, Equatable {
        case video(VideoDepacketizer.AccessUnit)
        case audio(AACDepacketizer.Frame)
    }
    private var baseURL: String

    public init(options: Options, shouldStop: @escaping @Sendable () -> Bool = { false }) throws(RTSPError) {
        self.options = options
        self.shouldStop = shouldStop
        address = try Address(options.url)
        baseURL = address.url
        depacketizer = VideoDepacketizer()
        try connect()
        do throws(RTSPError) { try start() } catch {
            close(teardown: false)
            throw error
        }
    }

    deinit { close(teardown: false) }

    // MARK: the session

    private func start() throws(RTSPError) {
        let options = try exchange("OPTIONS", url: address.url, headers: [])
        if let methods = options.header("Public"), !methods.uppercased().contains("GET_PARAMETER") { keepAliveMethod = "OPTIONS" }
        let describe = try exchange("DESCRIBE", url: address.url, headers: [("Accept", "application/sdp")])
        guard describe.status == 200 else { throw RTSPError("the camera answered DESCRIBE with \(describe.status) \(printable(describe.reason.prefix(60)))") }
        let sdp = try SessionDescription(describe.body)
        self.sdp = sdp
        baseURL = describe.header("Content-Base") ?? describe.header("Content-Location") ?? address.url
        guard let video = sdp.media.first(where: { $0.kind == "video" }) else { throw RTSPError("the camera's SDP has no video") }
        let codec: VideoDepacketizer.Codec
        switch video.encoding?.uppercased() {
        case "H264":
            codec = .h264
            let sets = video.h264ParameterSets
            depacketizer = VideoDepacketizer(codec: .h264, sps: sets.first { $0[0] & 0x1F == 7 }, pps: sets.first { $0[0] & 0x1F == 8 })
        case "H265":
            codec = .h265
            func set(_ key: String) -> [UInt8]? { video.parameters[key].flatMap { SessionDescription.Media.parameterSet($0) } }
            depacketizer = VideoDepacketizer(codec: .h265, vps: set("sprop-vps"), sps: set("sprop-sps"), pps: set("sprop-pps"))
        default:
            throw RTSPError("the camera's video is \(printable((video.encoding ?? "unnamed").prefix(20))), not H.264 or H.265")
        }
        _ = codec
        self.video = video
        videoPayloadType = video.payloadType
        let setupURL = SessionDescription.setupURL(control: video.control ?? sdp.control, base: baseURL)
        let setup = try exchange("SETUP", url: setupURL, headers: [("Transport", RTSPTransport.request(track: 0))])
        guard setup.status == 200 else { throw RTSPError("the camera answered SETUP with \(setup.status) \(printable(setup.reason.prefix(60)))") }
        guard let s = setup.header("Session") else { throw RTSPError("the camera answered SETUP without a Session") }
        session = try RTSPSession(header: s)
        let transport = try RTSPTransport(header: setup.header("Transport") ?? "")
        videoChannel = transport.rtpChannel
        controlChannel = transport.rtcpChannel
        if self.options.audio, let a = sdp.media.first(where: { $0.kind == "audio" }) { try setUpAudio(a, sdp: sdp) }
        let play = try exchange("PLAY", url: sdp.control.map { SessionDescription.setupURL(control: $0, base: baseURL) } ?? baseURL,
                                headers: [("Range", "npt=0.000-")])
        guard play.status == 200 else { throw RTSPError("the camera answered PLAY with \(play.status) \(printable(play.reason.prefix(60)))") }
        lastKeepAlive = Clock.now
        gatherBeforeWaking()
    }

    /// An AAC track (RFC 3640 AAC-hbr) set up beside the video. Audio that cannot be read this
    /// way (another codec, a camera that refuses its SETUP) is left out with a note, never the
    /// end of the session: the video is what is recorded first.
    private func setUpAudio(_ a: SessionDescription.Media, sdp: SessionDescription) throws(RTSPError) {
        guard a.encoding?.uppercased() == "MPEG4-GENERIC", a.clockRate != nil else {
            // The words libavformat's path uses, so status reads the same whichever reader.
            audioNote = "\(Self.codecName(rtpEncoding: a.encoding)) audio cannot be stored in MP4 without transcoding; it is dropped (set the camera's audio to AAC to keep it)"
            return
        }
        let depacketizer: AACDepacketizer
        do throws(RTSPError) { depacketizer = try AACDepacketizer(parameters: a.parameters) } catch {
            audioNote = "\(error.message): the audio is not recorded"
            return
        }
        guard depacketizer.config.count >= 2 else {
            audioNote = "the camera's AAC has no config (AudioSpecificConfig) in its SDP: the audio is not recorded"
            return
        }
        let url = SessionDescription.setupURL(control: a.control ?? sdp.control, base: baseURL)
        let setup = try exchange("SETUP", url: url, headers: [("Transport", RTSPTransport.request(track: 1))])
        guard setup.status == 200, let transport = try? RTSPTransport(header: setup.header("Transport") ?? ""),
              transport.rtpChannel != videoChannel, transport.rtpChannel != controlChannel else {
            audioNote = "the camera did not set up its audio beside the video (SETUP answered \(setup.status)): it is not recorded"
            return
        }
        audioChannel = transport.rtpChannel
        audioControlChannel = transport.rtcpChannel
        audioPayloadType = a.payloadType
        audioDepacketizer = depacketizer
        audio = a
    }

    /// FFmpeg's name for the codec an RTP encoding name (RFC 3551, RFC 7587, …) carries, as
    /// status shows it: "PCMA" is pcm_alaw.
    public static func codecName(rtpEncoding: String?) -> String {
        let e = (rtpEncoding ?? "").uppercased()
        let known = ["PCMA": "pcm_alaw", "PCMU": "pcm_mulaw", "OPUS": "opus", "L16": "pcm_s16be", "G722": "adpcm_g722",
                     "MPA": "mp3", "MPEG4-GENERIC": "aac", "MP4A-LATM": "aac_latm", "AMR": "amr_nb", "AMR-WB": "amr_wb"]
        if let name = known[e] { return name }
        if e.hasPrefix("G726") { return "adpcm_g726" }
        return e.isEmpty ? "unnamed" : printable(e.lowercased().prefix(20))
    }

    /// The next whole access unit of the video track (audio, if set up, is passed over).
    public func next() throws(RTSPError) -> VideoDepacketizer.AccessUnit {
        while true {
            if case .video(let au) = try nextUnit() { return au }
        }
    }

    /// The next picture or AAC frame, in the order they came.
    public func nextUnit() throws(RTSPError) -> Unit {
        while true {
            if !pending.isEmpty { return pending.removeFirst() }
            if let session, Clock.seconds(since: lastKeepAlive) >= Double(session.timeoutSeconds) / 2 {
                lastKeepAlive = Clock.now
                try send(keepAliveMethod, url: baseURL, headers: [])
            }
            while let item = try reader.next() {
                switch item {
                case .frame(let channel, let payload) where channel == videoChannel:
                    guard let packet = try? RTPPacket(payload) else { continue }
                    if let videoPayloadType, packet.payloadType != videoPayloadType { continue }
                    for au in depacketizer.push(packet) { pending.append(.video(au)) }
                    if !pending.isEmpty { return pending.removeFirst() }
                case .frame(let channel, let payload) where channel == audioChannel:
                    guard let packet = try? RTPPacket(payload) else { continue }
                    if let audioPayloadType, packet.payloadType != audioPayloadType { continue }
                    for f in audioDepacketizer!.push(packet) { pending.append(.audio(f)) }
                    if !pending.isEmpty { return pending.removeFirst() }
                case .frame(let channel, let payload) where channel == controlChannel:
                    // A camera that stops sending reports keeps recording: the clock is only noted.
                    if let report = try? RTCPSenderReport.find(in: Array(payload)) {
                        senderReport = report
                        senderReports += 1
                    }
                case .frame(let channel, let payload) where channel == audioControlChannel:
                    if let report = try? RTCPSenderReport.find(in: Array(payload)) { audioSenderReport = report }
                case .frame:
                    continue   // other tracks
                case .response(let r):
                    if r.status != 200 { throw RTSPError("the camera answered a keep-alive with \(r.status) \(printable(r.reason.prefix(60)))") }
                }
            }
            try fill()
        }
    }

    /// TEARDOWN (best effort, when asked) and the socket closed.
    public func close(teardown: Bool = true) {
        guard fd >= 0 else { return }
        if teardown, session != nil { try? send("TEARDOWN", url: baseURL, headers: []) }
        Glibc.close(fd)
        fd = -1
    }

    // MARK: requests

    private func send(_ method: String, url: String, headers: [(name: String, value: String)]) throws(RTSPError) {
        cseq += 1
        var all = headers
        all.append(("User-Agent", options.userAgent))
        if let session { all.append(("Session", session.id)) }
        if auth != nil { all.append(("Authorization", auth!.header(method: method, uri: url))) }
        try write(RTSPRequest(method: method, url: url, headers: all).bytes(cseq: cseq))
    }

    /// A request and its answer (frames before the answer are dropped: none flow before PLAY).
    private func exchange(_ method: String, url: String, headers: [(name: String, value: String)]) throws(RTSPError) -> RTSPResponse {
        for attempt in 0..<2 {
            try send(method, url: url, headers: headers)
            let r = try answer()
            if r.status == 401, attempt == 0, let credentials = address.credentials {
                auth = try RTSPAuthentication(challenges: r.headers("WWW-Authenticate"), user: credentials.user, password: credentials.password)
                continue
            }
            if r.status == 401 {
                throw RTSPError(address.credentials == nil ? "the camera asks for a user name and password: put them in the camera address (rtsp://user:password@…)"
                                                           : "the camera refused the user name and password in the camera address (401)", kind: .unauthenticated)
            }
            return r
        }
        throw RTSPError("the camera refused the user name and password in the camera address (401)", kind: .unauthenticated)
    }

    private func answer() throws(RTSPError) -> RTSPResponse {
        while true {
            while let item = try reader.next() {
                if case .response(let r) = item {
                    guard r.cseq == nil || r.cseq == cseq else { continue }
                    return r
                }
            }
            try fill()
        }
    }

    // MARK: the socket

    /// Bytes the kernel gathers before a wait for the camera ends (SO_RCVLOWAT), once PLAY is
    /// answered: a 4 Mbit/s camera then wakes the reader about 15 times a second instead of for
    /// each picture's packets, and each read takes tens of packets. What comes slower (a
    /// sub-stream, a keep-alive's answer) is taken when a 200 ms slice of the wait ends.
    public static let wakeBytes: Int32 = 32 << 10

    private func gatherBeforeWaking() {
        var lowat = Self.wakeBytes
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads what the camera sent, straight into the reader's buffer.
    private func fill() throws(RTSPError) {
        let started = Clock.now
        while true {
            if shouldStop() { throw RTSPError("stopped on request", kind: .stopped) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 200)
            if ready < 0, errno == EINTR { continue }
            // Ready (the low mark reached, or the camera closed) or a slice over: either way
            // what is there is taken, without waiting.
            let fd = fd
            let n = try reader.receive { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            reads += 1
            if n < 0 {
                guard errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK else {
                    throw RTSPError("reading from the camera failed (\(String(cString: strerror(errno))))", kind: .closed)
                }
                if Clock.seconds(since: started) >= options.stallSeconds {
                    throw RTSPError("no byte from the camera for \(Int(options.stallSeconds)) s", kind: .stalled)
                }
                continue
            }
            if n == 0 { throw RTSPError("the camera closed the connection", kind: .closed) }
            bytesRead += Int64(n)
            return
        }
    }

    private func write(_ bytes: [UInt8]) throws(RTSPError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RTSPError("writing to the camera failed (\(String(cString: strerror(errno))))", kind: .closed)
            }
            sent += n
        }
    }

    private func connect() throws(RTSPError) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &list)
        guard status == 0, let first = list else { throw RTSPError("cannot find the camera \(address.host) (\(String(cString: gai_strerror(status))))", kind: .unreachable) }
        defer { freeaddrinfo(list) }
        var why = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            defer { ai = a.pointee.ai_next }
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), a.pointee.ai_protocol)
            guard s >= 0 else { why = String(cString: strerror(errno)); continue }
            if Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 || errno == EINPROGRESS {
                var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
                let started = Clock.now
                var ready: Int32 = 0
                while ready == 0, !shouldStop(), Clock.seconds(since: started) < options.connectTimeoutSeconds {
                    ready = poll(&p, 1, 200)
                    if ready < 0, errno == EINTR { ready = 0 }
                }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                if ready > 0, getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0, err == 0 {
                    fd = s
                    return
                }
                why = ready > 0 ? String(cString: strerror(err)) : "no answer within \(Int(options.connectTimeoutSeconds)) s"
            } else {
                why = String(cString: strerror(errno))
            }
            Glibc.close(s)
        }
        throw RTSPError("cannot connect to the camera \(address.host):\(address.port) (\(why))", kind: .unreachable)
    }

    /// rtsp://[user[:password]@]host[:port][/path], the credentials percent-decoded and kept out
    /// of `url` (which is what requests name).
    struct Address {
        var host: String
        var port: Int
        var url: String
        var credentials: (user: String, password: String)?

        init(_ text: String) throws(RTSPError) {
            guard text.utf8.count <= 2048, text.lowercased().hasPrefix("rtsp://") else { throw RTSPError("the camera address is not rtsp://…") }
            var rest = Substring(text.dropFirst(7))
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            var authority = rest[..<authorityEnd]
            let path = rest[authorityEnd...]
            if let at = authority.lastIndex(of: "@") {
                let userinfo = authority[..<at]
                authority = authority[authority.index(after: at)...]
                let parts = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                credentials = (Self.decode(parts[0]), parts.count > 1 ? Self.decode(parts[1]) : "")
            }
            var host = String(authority)
            var port = 554
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                let after = host[host.index(after: close)...]
                if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { throw RTSPError("the camera address has a bad port") }; port = p }
                host = String(host[host.index(after: host.startIndex)..<close])
            } else if let colon = host.lastIndex(of: ":") {
                guard let p = Int(host[host.index(after: colon)...]) else { throw RTSPError("the camera address has a bad port") }
                port = p
                host = String(host[..<colon])
            }
            guard !host.isEmpty, (1...65535).contains(port) else { throw RTSPError("the camera address has no host or a port outside 1–65535") }
            self.host = host
            self.port = port
            rest = path
            let shownHost = host.contains(":") ? "[\(host)]" : host
            url = "rtsp://\(shownHost):\(port)\(rest)"
        }

        static func decode(_ s: Substring) -> String {
            var out: [UInt8] = []
            var i = s.utf8.startIndex
            let u = s.utf8
            while i < u.endIndex {
                if u[i] == 0x25, u.distance(from: i, to: u.endIndex) >= 3,
                   let v = UInt8(String(decoding: u[u.index(after: i)..<u.index(i, offsetBy: 3)], as: UTF8.self), radix: 16) {
                    out.append(v)
                    i = u.index(i, offsetBy: 3)
                } else {
                    out.append(u[i])
                    i = u.index(after: i)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    enum Clock {
        static var now: ContinuousClock.Instant { ContinuousClock.now }
        static func seconds(since t: ContinuousClock.Instant) -> Double {
            let d = ContinuousClock.now - t
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
    }
}
