/// H.264 over RTP (RFC 6184, packetization modes 0 and 1: single NAL unit packets, STAP-A
/// aggregates, FU-A fragments) and H.265 over RTP (RFC 7798 without DONL: single NAL unit
/// packets, aggregation packets, fragmentation units), gathered into access units (one
/// picture's NAL units). An
/// access unit ends at the marker bit or when the timestamp changes (cameras that never set the
/// marker). A sequence gap inside an access unit, or a fragment whose start was lost, drops the
/// access unit whole: half a picture is never handed on as a picture (the loss is counted).
///
/// Parameter sets are kept as they come: from the SDP (`sprop-parameter-sets`, `sprop-vps/sps/pps`)
/// at first, then in-band ones replace them (a camera that changes resolution mid-stream sends
/// new ones before its next IDR). An access unit with an IDR slice (H.265: an IRAP picture) is a
/// keyframe.
///
/// Bounds: an access unit at most `maxAccessUnitBytes` and `maxNALUnits`; a NAL unit's length in
/// a STAP-A checked against the bytes that remain; a parameter set at most 1 KiB. Past a bound
/// the access unit is dropped and said, never allocated.
public struct VideoDepacketizer: Sendable {
    public enum Codec: Sendable, Equatable { case h264, h265 }
    public static let maxAccessUnitBytes = 8 << 20
    public static let maxNALUnits = 1024
    public static let maxParameterSetBytes = 1024

    public struct AccessUnit: Sendable, Equatable {
        /// RTP timestamp on the 64-bit timeline (90 kHz).
        public var timestamp: Int64
        /// The picture as FFmpeg's muxers and decoders take it (Annex B): each NAL unit behind a
        /// 4-byte start code. Built in place as packets come, so a picture's bytes are copied
        /// once from the socket's buffer.
        public var annexB: [UInt8]
        /// Where each NAL unit (without its start code) is in `annexB`.
        public var nalRanges: [Range<Int>]
        public var isKeyframe: Bool

        public init(timestamp: Int64, nalUnits: [[UInt8]], isKeyframe: Bool) {
            self.timestamp = timestamp
            annexB = []
            nalRanges = []
            for n in nalUnits {
                annexB += VideoDepacketizer.startCode
                nalRanges.append(annexB.count..<(annexB.count + n.count))
                annexB += n
            }
            self.isKeyframe = isKeyframe
        }

        init(timestamp: Int64, annexB: [UInt8], nalRanges: [Range<Int>], isKeyframe: Bool) {
            self.timestamp = timestamp
            self.annexB = annexB
            self.nalRanges = nalRanges
            self.isKeyframe = isKeyframe
        }

        /// Copies of the NAL units, without start codes.
        public var nalUnits: [[UInt8]] { nalRanges.map { Array(annexB[$0]) } }
    }

    static let startCode: [UInt8] = [0, 0, 0, 1]

    public let codec: Codec
    public private(set) var vps: [UInt8]?
    public private(set) var sps: [UInt8]?
    public private(set) var pps: [UInt8]?
    /// Access units dropped because a packet of theirs was lost or they broke a bound.
    public private(set) var droppedAccessUnits = 0
    /// Why the last one was dropped.
    public private(set) var lastDrop: String?

    private var clock = RTPClock()
    /// The access unit being gathered; `bytes` counts its NAL units' bytes (not start codes).
    private var current: (timestamp: Int64, data: [UInt8], ranges: [Range<Int>], bytes: Int, damaged: Bool)?
    /// Where the open fragmented NAL unit begins in `current.data` (after its start code).
    private var fragment: Int?
    /// The last access unit's size: the next one's buffer is reserved from it.
    private var lastSize = 0

    public init(codec: Codec = .h264, vps: [UInt8]? = nil, sps: [UInt8]? = nil, pps: [UInt8]? = nil) {
        self.codec = codec
        self.vps = vps
        self.sps = sps
        self.pps = pps
    }

    /// Takes one RTP packet; returns the access units it completed (at most two: the one a new
    /// timestamp closed, and this packet's own when it carries the marker).
    public mutating func push(_ p: RTPPacket) -> [AccessUnit] {
        var done: [AccessUnit] = []
        let order = clock.sequence(p.sequence)
        if order == .old { return [] }
        let ts = clock.timestamp(p.timestamp)
        // Lost packets may be the end of the open access unit or the start of this packet's:
        // neither is handed on.
        let gap = order != .next
        if gap {
            damage("packets were lost inside it")
            dropFragment()
        }
        if let c = current, c.timestamp != ts {
            // A new picture began without the last one's marker: the last one is whole if no
            // packet of it was lost.
            if let au = finish() { done.append(au) }
        }
        if current == nil {
            var data: [UInt8] = []
            data.reserveCapacity(lastSize + lastSize / 4 + 256)
            current = (ts, data, [], 0, false)
        }
        if gap { damage("packets were lost before it") }
        take(p.payload)
        if p.marker, let au = finish() { done.append(au) }
        return done
    }

    private mutating func take(_ payload: ArraySlice<UInt8>) {
        if codec == .h265 { return takeH265(payload) }
        guard let first = payload.first else { return }
        let type = first & 0x1F
        switch type {
        case 1...23:
            dropFragment()
            add(payload)
        case 24:   // STAP-A
            aggregate(payload.dropFirst(1), minSize: 1, name: "a STAP-A")
        case 28:   // FU-A
            guard payload.count >= 2 else { damage("an FU-A without its header"); return }
            let header = payload[payload.startIndex + 1]
            fragmentUnit(header, nalHeader: ((first & 0xE0) | (header & 0x1F), nil), body: payload.dropFirst(2), name: "an FU-A")
        default:
            // STAP-B, MTAP, FU-B (interleaved mode) and reserved types: not sent in modes 0 and 1.
            damage("a packet of NAL type \(type), which packetization modes 0 and 1 do not use")
        }
    }

    /// RFC 7798 §4.4: the 2-byte NAL header's type is bits 1–6 of its first byte.
    private mutating func takeH265(_ payload: ArraySlice<UInt8>) {
        guard payload.count >= 2 else { damage("an H.265 packet shorter than its NAL header"); return }
        let b0 = payload[payload.startIndex], b1 = payload[payload.startIndex + 1]
        let type = (b0 >> 1) & 0x3F
        switch type {
        case 0...47:
            dropFragment()
            add(payload)
        case 48:   // aggregation packet
            aggregate(payload.dropFirst(2), minSize: 2, name: "an aggregation packet")
        case 49:   // fragmentation unit
            guard payload.count >= 3 else { damage("a fragmentation unit without its header"); return }
            let header = payload[payload.startIndex + 2]
            fragmentUnit(header, nalHeader: ((b0 & 0x81) | ((header & 0x3F) << 1), b1), body: payload.dropFirst(3), name: "a fragmentation unit")
        default:
            // PACI (50) and reserved types.
            damage("a packet of H.265 NAL type \(type), which this client does not take")
        }
    }

    /// NAL units behind 16-bit sizes (STAP-A, H.265's AP), each size checked against what remains.
    private mutating func aggregate(_ units: ArraySlice<UInt8>, minSize: Int, name: String) {
        dropFragment()
        var i = units.startIndex
        while i < units.endIndex {
            guard units.endIndex - i >= 2 else { damage("\(name) ends inside a size"); return }
            let size = Int(units[i]) << 8 | Int(units[i + 1])
            i += 2
            guard size >= minSize, units.endIndex - i >= size else { damage("\(name) names a NAL unit of \(size) bytes past its end"); return }
            add(units[i..<(i + size)])
            i += size
        }
    }

    /// One piece of a fragmented NAL unit (FU-A, H.265's FU): its start bit opens the unit with
    /// `nalHeader` (one byte, or two for H.265), its end bit hands it on; a piece without a start
    /// before it damages the unit. The pieces are appended to the access unit in place.
    private mutating func fragmentUnit(_ header: UInt8, nalHeader: (UInt8, UInt8?), body: ArraySlice<UInt8>, name: String) {
        // Only scalars are read out of `current` (a copy held would make each append copy it).
        guard let damaged = current?.damaged, !damaged else { return }
        if header & 0x80 != 0 {
            dropFragment()
            guard current!.ranges.count < Self.maxNALUnits else { return tooBig() }
            current!.data += Self.startCode
            fragment = current!.data.count
            current!.data.append(nalHeader.0)
            if let second = nalHeader.1 { current!.data.append(second) }
        } else if fragment == nil {
            return damage("\(name) fragment whose start was lost")
        }
        let length = current!.data.count - fragment! + body.count
        guard length <= Self.maxAccessUnitBytes else { return damage("a NAL unit over \(Self.maxAccessUnitBytes) bytes") }
        guard current!.bytes + length <= Self.maxAccessUnitBytes else { return tooBig() }
        current!.data += body
        if header & 0x40 != 0, let start = fragment {
            fragment = nil
            close(start..<current!.data.count)
        }
    }

    /// An open fragmented NAL unit that will not be finished (a new unit began, or packets were
    /// lost) is taken off the access unit.
    private mutating func dropFragment() {
        guard let start = fragment else { return }
        fragment = nil
        if current != nil, !current!.damaged, current!.data.count >= start {
            current!.data.removeSubrange((start - Self.startCode.count)...)
        }
    }

    /// The NAL unit type of `nal` in this codec.
    func type(_ nal: ArraySlice<UInt8>) -> UInt8 {
        let b = nal[nal.startIndex]
        return codec == .h264 ? b & 0x1F : (b >> 1) & 0x3F
    }

    /// A whole NAL unit (single, or from an aggregate) appended to the access unit.
    private mutating func add(_ nal: ArraySlice<UInt8>) {
        // Only the counts are read out: the bytes are appended in place (a copy of `current`
        // held here would make each append copy the whole access unit).
        guard let damaged = current?.damaged, !damaged, !nal.isEmpty else { return }
        let (count, bytes) = (current!.ranges.count, current!.bytes)
        guard count < Self.maxNALUnits, bytes + nal.count <= Self.maxAccessUnitBytes else { return tooBig() }
        current!.data += Self.startCode
        let start = current!.data.count
        current!.data += nal
        close(start..<current!.data.count)
    }

    /// `range` of the access unit is a whole NAL unit: counted, and kept when a parameter set.
    private mutating func close(_ range: Range<Int>) {
        current!.ranges.append(range)
        current!.bytes += range.count
        guard range.count <= Self.maxParameterSetBytes else { return }
        let nal = current!.data[range]
        switch (codec, type(nal)) {
        case (.h264, 7), (.h265, 33): sps = Array(nal)
        case (.h264, 8), (.h265, 34): pps = Array(nal)
        case (.h265, 32): vps = Array(nal)
        default: break
        }
    }

    private mutating func tooBig() {
        damage("an access unit over \(Self.maxNALUnits) NAL units or \(Self.maxAccessUnitBytes) bytes")
    }

    private mutating func damage(_ why: String) {
        if current != nil, current!.damaged == false {
            current!.damaged = true
            current!.data = []
            current!.ranges = []
            lastDrop = why
        }
    }

    private mutating func finish() -> AccessUnit? {
        // A fragmented NAL unit still open at the end of its picture is not handed on.
        dropFragment()
        defer { current = nil }
        guard let c = current else { return nil }
        if c.damaged { droppedAccessUnits += 1; return nil }
        guard !c.ranges.isEmpty else { return nil }
        lastSize = c.data.count
        let keyframe = c.ranges.contains { codec == .h264 ? type(c.data[$0]) == 5 : (16...21).contains(type(c.data[$0])) }
        return AccessUnit(timestamp: c.timestamp, annexB: c.data, nalRanges: c.ranges, isKeyframe: keyframe)
    }
}
