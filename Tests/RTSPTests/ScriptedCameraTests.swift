import Foundation
import Testing
@testable import RTSP

/// A camera on loopback that answers RTSP from a script and then sends RTP the test composed:
/// the quirks a real camera has, each as a test of the client (issue 25). It records every
/// request line and header block it was sent.
final class ScriptedCamera: @unchecked Sendable {
    struct Script: Sendable {
        var sdp: String
        var sessionHeader = "4242;timeout=60"
        /// Interleaved frames sent after PLAY, with a pause between them.
        var frames: [[UInt8]] = []
        var pause: Double = 0.01
        /// Close the connection after this many bytes of the frames (nil: send them all, then wait).
        var closeAfterBytes: Int?
        var publicMethods = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"
        /// Answer the SETUP of a second track with this status (nil: 200, the channels asked for).
        var secondSetupStatus: Int?
    }

    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var seen: [String] = []
    var requests: [String] { lock.lock(); defer { lock.unlock() }; return seen }

    init(_ script: Script) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard fd >= 0, bound == 0, listen(fd, 4) == 0 else { throw RTSPError("bind/listen \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        self.fd = fd
        let listener = fd
        Thread.detachNewThread { [self] in
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            serve(c, script)
        }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    private func send(_ c: Int32, _ b: [UInt8]) -> Bool {
        var sent = 0
        while sent < b.count {
            let n = b[sent...].withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    private func serve(_ c: Int32, _ script: Script) {
        defer { close(c) }
        var buffer: [UInt8] = []
        var playing = false
        var next = 0, sentBytes = 0, setups = 0
        // Bounded: at most 10 000 turns of answering and sending.
        for _ in 0..<10_000 {
            var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, playing ? Int32(script.pause * 1000) : 5000) > 0 {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = recv(c, &chunk, chunk.count, 0)
                if n <= 0 { return }
                buffer += chunk[..<n]
            }
            while let end = buffer.indices.dropLast(3).first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }) {
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                lock.lock(); seen.append(text); lock.unlock()
                let method = String(text.prefix { $0 != " " })
                let cseq = text.split(separator: "\r\n").first { $0.hasPrefix("CSeq:") }.map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) } ?? "0"
                var head = "RTSP/1.0 200 OK\r\nCSeq: \(cseq)\r\n"
                var body = ""
                switch method {
                case "OPTIONS": head += "Public: \(script.publicMethods)\r\n"
                case "DESCRIBE": head += "Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1:\(port)/cam/\r\n"; body = script.sdp
                case "SETUP":
                    setups += 1
                    if setups > 1, let status = script.secondSetupStatus {
                        head = "RTSP/1.0 \(status) Unsupported Transport\r\nCSeq: \(cseq)\r\n"
                        break
                    }
                    // The channels the client asked for.
                    let asked = text.range(of: "interleaved=").map { text[$0.upperBound...].prefix { $0.isNumber || $0 == "-" } } ?? "0-1"
                    head += "Session: \(script.sessionHeader)\r\nTransport: RTP/AVP/TCP;unicast;interleaved=\(asked)\r\n"
                case "PLAY": head += "Session: 4242\r\n"; playing = true
                case "TEARDOWN": _ = send(c, Array((head + "\r\n").utf8)); return
                default: head += "Session: 4242\r\n"
                }
                head += "Content-Length: \(body.utf8.count)\r\n\r\n"
                if !send(c, Array((head + body).utf8)) { return }
            }
            if playing, next < script.frames.count {
                var frame = script.frames[next]
                next += 1
                if let limit = script.closeAfterBytes, sentBytes + frame.count > limit {
                    frame = Array(frame.prefix(limit - sentBytes))
                    _ = send(c, frame)
                    return
                }
                sentBytes += frame.count
                if !send(c, frame) { return }
            }
        }
    }

    // MARK: composing a stream

    static func interleaved(_ channel: UInt8, _ rtp: [UInt8]) -> [UInt8] { [0x24, channel, UInt8(rtp.count >> 8), UInt8(rtp.count & 0xFF)] + rtp }

    static func rtp(_ seq: UInt16, _ ts: UInt32, marker: Bool, _ payload: [UInt8], type: UInt8 = 96) -> [UInt8] {
        [0x80, (marker ? 0x80 : 0) | type, UInt8(seq >> 8), UInt8(seq & 0xFF), UInt8(ts >> 24), UInt8(ts >> 16 & 0xFF), UInt8(ts >> 8 & 0xFF), UInt8(ts & 0xFF),
         0, 0, 0, 1] + payload
    }

    static let sps: [UInt8] = [0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x47, 0xFE, 0xC8]
    static let pps: [UInt8] = [0x68, 0xCE, 0x3C, 0x80]

    /// `pictures` pictures at 25 a second: a keyframe (SPS and PPS in a STAP-A, the IDR in
    /// FU-A pieces) every 25th, P slices between.
    static func stream(pictures: Int, inBandParameterSets: Bool = true) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var seq: UInt16 = 1000
        for n in 0..<pictures {
            let ts = UInt32(n * 3600)
            if n % 25 == 0 {
                if inBandParameterSets {
                    var stap: [UInt8] = [24]
                    for nal in [sps, pps] { stap += [0, UInt8(nal.count)] + nal }
                    frames.append(interleaved(0, rtp(seq, ts, marker: false, stap))); seq &+= 1
                }
                let idr = [UInt8](repeating: 0x88, count: 4000)
                let pieces = stride(from: 0, to: idr.count, by: 1400).map { Array(idr[$0..<min($0 + 1400, idr.count)]) }
                for (i, piece) in pieces.enumerated() {
                    let fu: UInt8 = (i == 0 ? 0x80 : 0) | (i == pieces.count - 1 ? 0x40 : 0) | 5
                    frames.append(interleaved(0, rtp(seq, ts, marker: i == pieces.count - 1, [0x7C, fu] + piece))); seq &+= 1
                }
            } else {
                frames.append(interleaved(0, rtp(seq, ts, marker: true, [0x41, 0x9A] + [UInt8](repeating: UInt8(n & 0xFF), count: 300)))); seq &+= 1
            }
        }
        return frames
    }

    static func sdp(parameterSets: Bool) -> String {
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            + "a=fmtp:96 packetization-mode=1" + (parameterSets ? ";sprop-parameter-sets=Z0LAHtkAoEf+yA==,aM48gA==" : "") + "\r\na=control:trackID=1\r\n"
    }

    /// An audio section after the video: AAC-hbr at 16 kHz mono (config 1408), or G.711 A-law.
    static func audioSDP(aac: Bool) -> String {
        aac ? "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
            + "a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizelength=13;indexlength=3;indexdeltalength=3\r\na=control:trackID=2\r\n"
            : "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=2\r\n"
    }

    /// An RFC 3640 packet of one AAC frame on channel 2: the AU-headers-length (16 bits), a
    /// 13-bit size and 3-bit index, then the frame.
    static func aacPacket(_ seq: UInt16, _ ts: UInt32, _ frame: [UInt8]) -> [UInt8] {
        let header = UInt16(frame.count) << 3
        return interleaved(2, rtp(seq, ts, marker: true, [0, 16, UInt8(header >> 8), UInt8(header & 0xFF)] + frame, type: 97))
    }
}

@Suite(.timeLimit(.minutes(2)))
struct ScriptedCameraTests {
    func connect(_ script: ScriptedCamera.Script) throws -> (ScriptedCamera, RTSPConnection) {
        let camera = try ScriptedCamera(script)
        var options = RTSPConnection.Options(url: "rtsp://127.0.0.1:\(camera.port)/cam")
        options.stallSeconds = 3
        return (camera, try RTSPConnection(options: options))
    }

    @Test func parameterSetsOnlyInBandAreTakenFromTheStream() throws {
        let (camera, client) = try connect(.init(sdp: ScriptedCamera.sdp(parameterSets: false), frames: ScriptedCamera.stream(pictures: 30)))
        defer { camera.stop() }
        #expect(client.depacketizer.sps == nil, "the SDP named none")
        let first = try client.next()
        #expect(first.isKeyframe && first.nalUnits.first == ScriptedCamera.sps)
        #expect(client.depacketizer.sps == ScriptedCamera.sps && client.depacketizer.pps == ScriptedCamera.pps)
        for _ in 1..<30 { _ = try client.next() }
        #expect(client.depacketizer.droppedAccessUnits == 0)
        client.close()
    }

    @Test func aCameraThatClosesMidFrameEndsTheSessionAfterTheLastWholePicture() throws {
        let frames = ScriptedCamera.stream(pictures: 10)
        // Cut inside the 8th picture's packet.
        let cut = frames.prefix(9).reduce(0) { $0 + $1.count } + 100
        let (camera, client) = try connect(.init(sdp: ScriptedCamera.sdp(parameterSets: true), frames: frames, closeAfterBytes: cut))
        defer { camera.stop() }
        var got: [VideoDepacketizer.AccessUnit] = []
        do {
            for _ in 0..<20 { got.append(try client.next()) }
            Issue.record("the session went on after the camera closed")
        } catch {
            #expect(error.message.contains("closed the connection"), "\(error.message)")
        }
        // Pictures 0–5 are whole (the keyframe's 4 packets, then one each); the 7th was cut.
        #expect(got.count == 6, "\(got.map(\.timestamp))")
        #expect(got.allSatisfy { $0.nalUnits.allSatisfy { $0.count > 1 } })
    }

    @Test func keepAlivesGoAtHalfTheSessionTimeoutWithTheSessionAndTeardownEnds() throws {
        // A session of 2 s, 3 s of pictures: at least one GET_PARAMETER after about 1 s.
        var script = ScriptedCamera.Script(sdp: ScriptedCamera.sdp(parameterSets: true), sessionHeader: "4242;timeout=2",
                                           frames: ScriptedCamera.stream(pictures: 75), pause: 0.04)
        script.publicMethods = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
        let (camera, client) = try connect(script)
        defer { camera.stop() }
        for _ in 0..<75 { _ = try client.next() }
        client.close()
        Thread.sleep(forTimeInterval: 0.3)
        let r = camera.requests
        let keepAlives = r.filter { $0.hasPrefix("OPTIONS") && $0.contains("Session: 4242") }
        #expect(keepAlives.count >= 1, "a camera that lists no GET_PARAMETER is kept alive with OPTIONS: \(r.map { $0.prefix(20) })")
        #expect(r.last?.hasPrefix("TEARDOWN") == true)
        #expect(client.senderReports == 0, "this camera sends no RTCP, and recording goes on without it")
    }

    @Test func aCameraWithAACGivesPicturesAndFramesOnOneConnection() throws {
        // 10 pictures, an AAC frame (1024 samples at 16 kHz = 5760 ticks of 90 kHz) after each.
        var frames: [[UInt8]] = []
        for (i, f) in ScriptedCamera.stream(pictures: 10).enumerated() {
            frames.append(f)
            frames.append(ScriptedCamera.aacPacket(UInt16(500 + i), UInt32(7000 + i * 1024), [UInt8](repeating: UInt8(i), count: 20 + i)))
        }
        let (camera, client) = try connect(.init(sdp: ScriptedCamera.sdp(parameterSets: true) + ScriptedCamera.audioSDP(aac: true), frames: frames))
        defer { camera.stop() }
        #expect(client.audio?.clockRate == 16000 && client.audio?.channels == 1 && client.audioDepacketizer?.config == [0x14, 0x08])
        var pictures = 0
        var audio: [AACDepacketizer.Frame] = []
        // Until the 10th picture (the last frame, sent after it, may not be read), at most 40 turns.
        for _ in 0..<40 where pictures < 10 {
            switch try client.nextUnit() {
            case .video: pictures += 1
            case .audio(let f): audio.append(f)
            }
        }
        #expect(pictures == 10)
        // Every frame whole, in order, on its RTP clock.
        #expect(audio.count >= 9 && audio.enumerated().allSatisfy { $0.element.data == [UInt8](repeating: UInt8($0.offset), count: 20 + $0.offset) })
        #expect(zip(audio, audio.dropFirst()).allSatisfy { $1.timestamp - $0.timestamp == 1024 })
        let setups = camera.requests.filter { $0.hasPrefix("SETUP") }
        #expect(setups.count == 2 && setups[1].contains("trackID=2") && setups[1].contains("interleaved=2-3") && setups[1].contains("Session: 4242"), "\(setups)")
        client.close()
    }

    @Test func audioThatCannotBeReadLeavesTheVideoAndSaysWhy() throws {
        // G.711: not AAC, so not set up at all.
        let (camera, client) = try connect(.init(sdp: ScriptedCamera.sdp(parameterSets: true) + ScriptedCamera.audioSDP(aac: false),
                                                 frames: ScriptedCamera.stream(pictures: 5)))
        defer { camera.stop() }
        #expect(client.audio == nil && (client.audioNote ?? "").hasPrefix("pcm_alaw audio cannot be stored"), "\(client.audioNote ?? "")")
        for _ in 0..<5 { _ = try client.next() }
        #expect(camera.requests.filter { $0.hasPrefix("SETUP") }.count == 1)
        client.close()
        // AAC whose SETUP the camera refuses: the video goes on.
        var script = ScriptedCamera.Script(sdp: ScriptedCamera.sdp(parameterSets: true) + ScriptedCamera.audioSDP(aac: true), frames: ScriptedCamera.stream(pictures: 5))
        script.secondSetupStatus = 461
        let (camera2, client2) = try connect(script)
        defer { camera2.stop() }
        #expect(client2.audio == nil && (client2.audioNote ?? "").contains("461"), "\(client2.audioNote ?? "")")
        for _ in 0..<5 { _ = try client2.next() }
        client2.close()
    }

    @Test func aCameraThatGoesSilentIsAStall() throws {
        let (camera, client) = try connect(.init(sdp: ScriptedCamera.sdp(parameterSets: true), frames: Array(ScriptedCamera.stream(pictures: 3))))
        defer { camera.stop() }
        for _ in 0..<3 { _ = try client.next() }
        let started = Date()
        #expect(throws: RTSPError.self) { _ = try client.next() }
        #expect(Date().timeIntervalSince(started) < 30)
    }
}
