import Foundation
import Testing
@testable import RTSP

/// The pure half of Junction's RTSP client (issue 25): answers, interleaved frames, RTP, SDP and
/// H.264 access units, each at its bounds and against what real cameras send.
@Suite struct RTSPParsingTests {
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    // A Hikvision-style DESCRIBE answer (its shape, from Retina's camera transcripts).
    static let describe = """
        RTSP/1.0 200 OK\r
        CSeq: 2\r
        Content-Type: application/sdp\r
        Content-Base: rtsp://192.168.1.64:554/Streaming/Channels/101/\r
        Content-Length: 459\r
        \r

        """

    static let sdp = """
        v=0\r
        o=- 1109162014219182 1109162014219192 IN IP4 x.y.z.w\r
        s=Media Presentation\r
        e=NONE\r
        b=AS:5050\r
        t=0 0\r
        a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/\r
        m=video 0 RTP/AVP 96\r
        c=IN IP4 0.0.0.0\r
        b=AS:5000\r
        a=recvonly\r
        a=x-dimensions:1920,1080\r
        a=control:trackID=1\r
        a=rtpmap:96 H264/90000\r
        a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z01AKI2NQDwBE/LCAAAOEAACvyAI,aO44gA==\r
        a=Media_header:MEDIAINFO=494D4B48010100000400000100000000000000000000000000000000000000000000000000000000;\r
        a=appversion:1.0\r

        """

    @Test func aDescribeAnswerAndItsSDPAreRead() throws {
        var body = Self.bytes(Self.sdp)
        let head = Self.describe.replacingOccurrences(of: "459", with: "\(body.count)")
        let all = Self.bytes(head) + body + Self.bytes("RTSP/1.0 200")
        guard case .response(let r, let consumed) = try RTSPResponse.parse(all[...]) else { Issue.record("incomplete"); return }
        #expect(r.status == 200 && r.cseq == 2 && r.header("content-base") == "rtsp://192.168.1.64:554/Streaming/Channels/101/")
        #expect(consumed == all.count - 12 && r.body == body)
        let s = try SessionDescription(r.body)
        #expect(s.media.count == 1)
        let v = s.media[0]
        #expect(v.kind == "video" && v.payloadType == 96 && v.encoding == "H264" && v.clockRate == 90000 && v.control == "trackID=1")
        #expect(v.parameters["packetization-mode"] == "1")
        let sets = v.h264ParameterSets
        #expect(sets.count == 2 && sets[0].first! & 0x1F == 7 && sets[1].first! & 0x1F == 8)
        #expect(SessionDescription.setupURL(control: v.control, base: r.header("Content-Base")!) == "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1")
        #expect(SessionDescription.setupURL(control: "rtsp://cam/x", base: "rtsp://other/") == "rtsp://cam/x")
        body.removeAll()
    }

    @Test func answersAtAndPastTheirBounds() throws {
        #expect(try RTSPResponse.parse(Self.bytes("RTSP/1.0 200 OK\r\nCSeq: 1\r\n")[...]) == .incomplete)
        let bare = Self.bytes("RTSP/1.0 401 Unauthorized\nCSeq: 3\nWWW-Authenticate: Digest realm=\"a\"\nWWW-Authenticate: Basic realm=\"a\"\n\n")
        guard case .response(let r, let n) = try RTSPResponse.parse(bare[...]) else { Issue.record("bare LF"); return }
        #expect(r.status == 401 && n == bare.count && r.headers("www-authenticate").count == 2)
        let atBound = Self.bytes("RTSP/1.0 200 OK\r\nContent-Length: \(RTSPResponse.maxBodyBytes)\r\n\r\n") + [UInt8](repeating: 0x41, count: RTSPResponse.maxBodyBytes)
        guard case .response(let big, _) = try RTSPResponse.parse(atBound[...]) else { Issue.record("body at the bound"); return }
        #expect(big.body.count == RTSPResponse.maxBodyBytes)
        for bad in ["RTSP/1.0 200 OK\r\nContent-Length: \(RTSPResponse.maxBodyBytes + 1)\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n", "RTSP/1.0 2000 OK\r\n\r\n",
                    "RTSP/1.0 200 OK\r\nno colon here\r\n\r\n", "RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
                    "RTSP/1.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                    "RTSP/1.0 200 OK\r\n" + (0...RTSPResponse.maxHeaders).map { "X-\($0): y\r\n" }.joined() + "\r\n"] {
            #expect(throws: RTSPError.self, "\(bad.prefix(40))") { try RTSPResponse.parse(Self.bytes(bad)[...]) }
        }
        let longHead = Self.bytes("RTSP/1.0 200 OK\r\nX: " + String(repeating: "a", count: RTSPResponse.maxHeadBytes))
        #expect(throws: RTSPError.self) { try RTSPResponse.parse(longHead[...]) }
    }

    @Test func interleavedFramesAndAnswersAreSplitFromOneStream() throws {
        var r = InterleavedReader()
        let frame: [UInt8] = [0x24, 0, 0, 3, 1, 2, 3]
        let rtcp: [UInt8] = [0x24, 1, 0, 0]
        let answer = Self.bytes("RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n")
        // Garbage first (a torn frame after a reconnect), then the items, fed a byte at a time.
        let stream = [0x00, 0xFF, 0x17] + frame + answer + rtcp + frame
        var items: [InterleavedReader.Item] = []
        for b in stream {
            try r.feed([b])
            while let i = try r.next() { items.append(i) }
        }
        #expect(items.count == 4)
        #expect(items[0] == .frame(channel: 0, payload: [1, 2, 3]))
        if case .response(let a) = items[1] { #expect(a.cseq == 5) } else { Issue.record("no answer") }
        #expect(items[2] == .frame(channel: 1, payload: []) && items[3] == items[0])
        #expect(r.skippedBytes == 3)
        // The largest frame a 16-bit length allows, in one read.
        var big = InterleavedReader()
        try big.feed([0x24, 0, 0xFF, 0xFF] + [UInt8](repeating: 9, count: 65_535))
        if case .frame(_, let p)? = try big.next() { #expect(p.count == 65_535) } else { Issue.record("no big frame") }
    }

    @Test func rtpHeadersAreReadAndBadOnesRefused() throws {
        let p = try RTPPacket([0x80, 0xE0, 0x12, 0x34, 0, 0, 0x03, 0xE8, 0xDE, 0xAD, 0xBE, 0xEF, 0x65, 1, 2])
        #expect(p.marker && p.payloadType == 96 && p.sequence == 0x1234 && p.timestamp == 1000 && p.ssrc == 0xDEAD_BEEF && Array(p.payload) == [0x65, 1, 2])
        // One CSRC, an extension of one word, two bytes of padding.
        let q = try RTPPacket([0xB1, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9, 9, 0xBE, 0xDE, 0, 1, 7, 7, 7, 7, 0x41, 5, 0, 2])
        #expect(Array(q.payload) == [0x41, 5] && !q.marker)
        for bad: [UInt8] in [[], [0x80, 0x60, 0, 1], [0x40] + [UInt8](repeating: 0, count: 11), [0x8F] + [UInt8](repeating: 0, count: 11),
                              [0x90] + [UInt8](repeating: 0, count: 11) + [0, 0, 0xFF, 0xFF], [0xA0] + [UInt8](repeating: 0, count: 11) + [1, 2, 0],
                              [0xA0] + [UInt8](repeating: 0, count: 11) + [1, 2, 4]] {
            #expect(throws: RTSPError.self, "\(bad)") { try RTPPacket(bad) }
        }
    }

    @Test func sequenceAndTimestampWrapsGoOnCounting() {
        var c = RTPClock()
        #expect(c.sequence(65_534) == .next && c.sequence(65_535) == .next && c.sequence(0) == .next)
        #expect(c.sequence(3) == .gap(missing: 2) && c.lost == 2)
        #expect(c.sequence(2) == .old && c.sequence(3) == .old)
        #expect(c.lastSequence == Int64(65_539))
        #expect(c.timestamp(4_294_967_000) == 4_294_967_000)
        #expect(c.timestamp(704) == 4_294_967_296 + 704, "a 32-bit wrap, after 13 h at 90 kHz")
        #expect(c.timestamp(600) == 4_294_967_296 + 600, "a step back is a step back")
    }

    // MARK: H.264

    static func rtp(_ seq: UInt16, _ ts: UInt32, marker: Bool = false, _ payload: [UInt8]) -> RTPPacket {
        RTPPacket(marker: marker, payloadType: 96, sequence: seq, timestamp: ts, ssrc: 1, payload: payload[...])
    }

    static let sps: [UInt8] = [0x67, 0x4D, 0x40, 0x28]
    static let pps: [UInt8] = [0x68, 0xEE, 0x38, 0x80]
    static let idr: [UInt8] = [0x65] + [UInt8](repeating: 0xAB, count: 3000)

    /// An IDR of 3000 bytes in FU-A fragments of ~1400.
    static func fragments(_ nal: [UInt8], from seq: UInt16, ts: UInt32, marker: Bool = true) -> [RTPPacket] {
        let body = Array(nal.dropFirst())
        let pieces = stride(from: 0, to: body.count, by: 1400).map { Array(body[$0..<min($0 + 1400, body.count)]) }
        return pieces.enumerated().map { i, piece in
            let header = (i == 0 ? 0x80 : 0) | (i == pieces.count - 1 ? 0x40 : 0) | (nal[0] & 0x1F)
            return rtp(seq &+ UInt16(i), ts, marker: marker && i == pieces.count - 1, [(nal[0] & 0xE0) | 28, header] + piece)
        }
    }

    static func stapA(_ nals: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = [24]
        for nal in nals { out += [UInt8(nal.count >> 8), UInt8(nal.count & 0xFF)] + nal }
        return out
    }

    @Test func parameterSetsAndAFragmentedIDRMakeOneKeyframe() {
        var d = VideoDepacketizer()
        var out = d.push(Self.rtp(10, 9000, Self.stapA([Self.sps, Self.pps])))
        for p in Self.fragments(Self.idr, from: 11, ts: 9000) { out += d.push(p) }
        #expect(out.count == 1)
        #expect(out.first?.nalUnits == [Self.sps, Self.pps, Self.idr] && out.first?.isKeyframe == true && out.first?.timestamp == 9000)
        #expect(d.sps == Self.sps && d.pps == Self.pps)
        // A P slice as a single NAL unit, no marker: closed by the next timestamp.
        #expect(d.push(Self.rtp(14, 12600, [0x41, 1, 2, 3])).isEmpty)
        let next = d.push(Self.rtp(15, 16200, marker: true, [0x41, 4]))
        #expect(next.map(\.timestamp) == [12600, 16200] && next.allSatisfy { !$0.isKeyframe })
    }

    @Test func aLostFragmentDropsTheWholePictureAndTheNextOneIsWhole() {
        var d = VideoDepacketizer()
        var packets = Self.fragments(Self.idr, from: 100, ts: 1000)
        packets.remove(at: 1)
        var out: [VideoDepacketizer.AccessUnit] = []
        for p in packets { out += d.push(p) }
        #expect(out.isEmpty && d.droppedAccessUnits == 1 && d.lastDrop != nil)
        for p in Self.fragments(Self.idr, from: 103, ts: 4600) { out += d.push(p) }
        #expect(out.count == 1 && out[0].nalUnits == [Self.idr])
        // A fragment whose start was lost, across a timestamp change: dropped, said.
        var e = VideoDepacketizer()
        let late = Array(Self.fragments(Self.idr, from: 0, ts: 0).dropFirst())
        for p in late { out = e.push(p) }
        #expect(out.isEmpty && e.droppedAccessUnits == 1)
    }

    @Test func hostileAggregatesAreDroppedNotTrusted() {
        var d = VideoDepacketizer()
        // A STAP-A naming a NAL unit past its end, a zero size, a size cut in half.
        for bad: [UInt8] in [[24, 0x10, 0x00, 0x65], [24, 0, 0], [24, 0, 2, 0x41, 1, 0]] {
            #expect(d.push(Self.rtp(UInt16(d.droppedAccessUnits), 100 * UInt32(d.droppedAccessUnits), marker: true, bad)).isEmpty)
        }
        #expect(d.droppedAccessUnits == 3)
        // FU-B, MTAP: not used by modes 0 and 1.
        var e = VideoDepacketizer()
        #expect(e.push(Self.rtp(0, 0, marker: true, [29, 0x85, 1])).isEmpty && e.droppedAccessUnits == 1)
        // An access unit at the NAL bound is kept; one past it is dropped.
        var f = VideoDepacketizer()
        var out: [VideoDepacketizer.AccessUnit] = []
        for i in 0..<VideoDepacketizer.maxNALUnits { out += f.push(Self.rtp(UInt16(i), 0, [0x41, 1])) }
        out += f.push(Self.rtp(UInt16(VideoDepacketizer.maxNALUnits), 0, marker: true, [0x41, 2]))
        #expect(out.isEmpty && f.droppedAccessUnits == 1)
        var g = VideoDepacketizer()
        for i in 0..<(VideoDepacketizer.maxNALUnits - 1) { out += g.push(Self.rtp(UInt16(i), 0, [0x41, 1])) }
        out += g.push(Self.rtp(UInt16(VideoDepacketizer.maxNALUnits - 1), 0, marker: true, [0x41, 2]))
        #expect(out.count == 1 && out[0].nalUnits.count == VideoDepacketizer.maxNALUnits)
    }

    @Test func inBandParameterSetsReplaceTheSDPs() {
        var d = VideoDepacketizer(sps: [0x67, 1], pps: [0x68, 1])
        _ = d.push(Self.rtp(0, 0, marker: true, Self.stapA([Self.sps, Self.pps, [0x65, 1]])))
        #expect(d.sps == Self.sps && d.pps == Self.pps)
    }
}

/// H.265 (RFC 7798): aggregation packets, fragmentation units, IRAP keyframes.
@Suite struct H265DepacketizerTests {
    static func rtp(_ seq: UInt16, _ ts: UInt32, marker: Bool = false, _ payload: [UInt8]) -> RTPPacket {
        RTPPacket(marker: marker, payloadType: 97, sequence: seq, timestamp: ts, ssrc: 1, payload: payload[...])
    }
    // NAL headers: type << 1, layer 0, tid 1.
    static let vps: [UInt8] = [32 << 1, 1, 0xC, 1]
    static let sps: [UInt8] = [33 << 1, 1, 1, 1, 0x60]
    static let pps: [UInt8] = [34 << 1, 1, 0xC1, 0x72]
    static let idr: [UInt8] = [19 << 1, 1] + [UInt8](repeating: 0xAF, count: 2500)

    @Test func parameterSetsInAnAggregateAndAFragmentedIRAPMakeAKeyframe() {
        var d = VideoDepacketizer(codec: .h265)
        var ap: [UInt8] = [48 << 1, 1]
        for nal in [Self.vps, Self.sps, Self.pps] { ap += [UInt8(nal.count >> 8), UInt8(nal.count & 0xFF)] + nal }
        var out = d.push(Self.rtp(1, 0, ap))
        let body = Array(Self.idr.dropFirst(2))
        out += d.push(Self.rtp(2, 0, [49 << 1, 1, 0x80 | 19] + body[..<1200]))
        out += d.push(Self.rtp(3, 0, [49 << 1, 1, 19] + body[1200..<2400]))
        out += d.push(Self.rtp(4, 0, marker: true, [49 << 1, 1, 0x40 | 19] + body[2400...]))
        #expect(out.count == 1 && out[0].isKeyframe && out[0].nalUnits == [Self.vps, Self.sps, Self.pps, Self.idr])
        #expect(d.vps == Self.vps && d.sps == Self.sps && d.pps == Self.pps)
        // A trailing picture (TRAIL_R, type 1) is not a keyframe; a lost middle fragment drops one.
        out = d.push(Self.rtp(5, 3000, marker: true, [1 << 1, 1, 0xAA]))
        #expect(out.count == 1 && !out[0].isKeyframe)
        out = d.push(Self.rtp(6, 6000, [49 << 1, 1, 0x80 | 19] + body[..<1200]))
        out += d.push(Self.rtp(8, 6000, marker: true, [49 << 1, 1, 0x40 | 19] + body[2400...]))
        #expect(out.isEmpty && d.droppedAccessUnits == 1)
    }

    @Test func hostileH265PacketsAreDropped() {
        var d = VideoDepacketizer(codec: .h265)
        for (i, bad): (Int, [UInt8]) in [[0x60], [48 << 1, 1, 0x10, 0, 1], [48 << 1, 1, 0, 1, 0x40], [49 << 1, 1], [50 << 1, 1, 0, 0]].enumerated() {
            #expect(d.push(Self.rtp(UInt16(i), UInt32(i) * 100, marker: true, bad)).isEmpty, "\(bad)")
        }
        #expect(d.droppedAccessUnits == 5)
    }
}

/// RTCP sender reports: the camera's clock at an RTP timestamp.
@Suite struct RTCPTests {
    static func sr(ntpSeconds: UInt32, fraction: UInt32, rtp: UInt32) -> [UInt8] {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        return [0x80, 200, 0, 6] + be(0x1234) + be(ntpSeconds) + be(fraction) + be(rtp) + be(10) + be(5000)
    }

    @Test func aSenderReportAfterAReceiverReportIsFound() throws {
        // 2026-12-07T00:00:00Z is 1796601600 s after 1970; half a second is 2^31 of the fraction.
        let rr: [UInt8] = [0x80, 201, 0, 1, 0, 0, 0, 1]
        let r = try RTCPSenderReport.find(in: rr + Self.sr(ntpSeconds: UInt32(1_796_601_600 + 2_208_988_800), fraction: 1 << 31, rtp: 90_000))
        #expect(r?.rtpTimestamp == 90_000 && r?.ssrc == 0x1234 && r?.unixMilliseconds == 1_796_601_600_500)
        #expect(try RTCPSenderReport.find(in: rr) == nil)
        #expect(try RTCPSenderReport.find(in: []) == nil)
    }

    @Test func lengthsPastTheEndAreRefused() {
        for bad: [UInt8] in [[0x80, 201, 0, 9, 0, 0, 0, 1], [0x40, 200, 0, 6], [0x80, 200, 0, 1, 0, 0, 0, 0]] {
            #expect(throws: RTSPError.self, "\(bad)") { try RTCPSenderReport.find(in: bad) }
        }
    }
}

/// Decode times for pictures timestamped by presentation: rising, never after presentation.
@Suite struct DecodeTimelineTests {
    static func dts(_ ptsInPictures: [Int64], depth: Int) -> (dts: [Int64], timeline: DecodeTimeline) {
        var t = DecodeTimeline(depth: depth)
        return (ptsInPictures.map { t.decodeTime(pts: $0 * 3600) / 3600 }, t)
    }

    @Test func bFramesInDecodeOrderGetTheDecodeTimesLibavformatGives() {
        // I0 P3 B1 B2 P6 B4 B5: two B-frames between references.
        let (d, t) = Self.dts([0, 3, 1, 2, 6, 4, 5], depth: 2)
        #expect(d == [-2, -1, 0, 1, 2, 3, 4] && t.tooDeep == 0)
    }

    @Test func withoutBFramesDecodeTimesTrailByTheDepth() {
        let (d, t) = Self.dts(Array(0..<8), depth: 2)
        #expect(d == [-2, -1, 0, 1, 2, 3, 4, 5] && t.tooDeep == 0)
        #expect(Self.dts(Array(0..<5), depth: 0).dts == Array(0..<5), "depth 0: decode time is presentation time")
    }

    @Test func anyOrderGivesRisingTimesAndDeeperReorderingIsCounted() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let pts = (0..<40).map { _ in Int64.random(in: -1_000...1_000, using: &rng) }
            var t = DecodeTimeline(depth: Int.random(in: 0...16, using: &rng))
            let d = pts.map { t.decodeTime(pts: $0) }
            #expect(zip(d, d.dropFirst()).allSatisfy { $0 < $1 })
            #expect(zip(d, pts).filter { $0 > $1 }.count == t.tooDeep)
        }
        // B-frames with no room for them: their decode times would come after presentation.
        let (d, deep) = Self.dts([0, 3, 1, 2], depth: 0)
        #expect(deep.tooDeep == 2 && d == [0, 3, 3, 3], "one tick apart after the 3: rising, but after their presentation")
    }
}

/// AAC (RFC 3640, AAC-hbr): frames behind AU headers, several to a packet or one in fragments.
@Suite struct AACDepacketizerTests {
    static let gstreamer = ["streamtype": "5", "profile-level-id": "2", "mode": "AAC-hbr", "config": "1588", "sizelength": "13", "indexlength": "3", "indexdeltalength": "3"]

    static func packet(_ seq: UInt16, _ ts: UInt32, marker: Bool = true, sizes: [Int], data: [UInt8]) -> RTPPacket {
        var payload: [UInt8] = [UInt8((sizes.count * 16) >> 8), UInt8((sizes.count * 16) & 0xFF)]
        for s in sizes { payload += [UInt8(s >> 5), UInt8((s & 0x1F) << 3)] }   // 13-bit size, 3-bit index 0
        return RTPPacket(marker: marker, payloadType: 97, sequence: seq, timestamp: ts, ssrc: 2, payload: (payload + data)[...])
    }

    @Test func severalFramesInOnePacketGetTheirOwnTimes() throws {
        var d = try AACDepacketizer(parameters: Self.gstreamer)
        #expect(d.config == [0x15, 0x88])
        let data = [UInt8](repeating: 1, count: 100) + [UInt8](repeating: 2, count: 200) + [UInt8](repeating: 3, count: 50)
        let frames = d.push(Self.packet(1, 48_000, sizes: [100, 200, 50], data: data))
        #expect(frames.map(\.timestamp) == [48_000, 49_024, 50_048] && frames.map(\.data.count) == [100, 200, 50] && frames[1].data.allSatisfy { $0 == 2 })
    }

    @Test func aFragmentedFrameIsWholeOrDropped() throws {
        var d = try AACDepacketizer(parameters: Self.gstreamer)
        let frame = (0..<3000).map { UInt8($0 & 0xFF) }
        var out = d.push(Self.packet(1, 0, marker: false, sizes: [3000], data: Array(frame[..<1400])))
        out += d.push(Self.packet(2, 0, marker: false, sizes: [3000], data: Array(frame[1400..<2800])))
        out += d.push(Self.packet(3, 0, marker: true, sizes: [3000], data: Array(frame[2800...])))
        #expect(out == [AACDepacketizer.Frame(timestamp: 0, data: frame)])
        out = d.push(Self.packet(4, 1024, marker: false, sizes: [3000], data: Array(frame[..<1400])))
        out += d.push(Self.packet(6, 1024, marker: true, sizes: [3000], data: Array(frame[2800...])))
        #expect(out.isEmpty && d.droppedFrames >= 1)
        #expect(d.push(Self.packet(7, 2048, sizes: [10], data: [UInt8](repeating: 9, count: 10))).count == 1, "the next whole frame is taken")
    }

    @Test func hostilePacketsAndParametersAreRefused() throws {
        var d = try AACDepacketizer(parameters: Self.gstreamer)
        let bad: [[UInt8]] = [[0], [0xFF, 0xFF, 0, 0], [0, 16, 0x00, 0x50] + [1, 2], [0, 15, 0x00, 0x08, 7], [0, 0]]
        for (i, b) in bad.enumerated() {
            #expect(d.push(RTPPacket(marker: true, payloadType: 97, sequence: UInt16(i + 1), timestamp: UInt32(i) * 1024, ssrc: 2, payload: b[...])).isEmpty, "\(b)")
        }
        #expect(d.droppedFrames == bad.count)
        for p in [["mode": "AAC-lbr"], ["sizelength": "0"], ["sizelength": "17"], ["config": "15G8"], ["config": "158"], ["config": String(repeating: "00", count: 65)]] {
            #expect(throws: RTSPError.self, "\(p)") { try AACDepacketizer(parameters: p) }
        }
    }
}
