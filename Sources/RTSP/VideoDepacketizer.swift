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
        /// NAL units without start codes or lengths.
        public var nalUnits: [[UInt8]]
        public var isKeyframe: Bool
    }

    public let codec: Codec
    public private(set) var vps: [UInt8]?
    public private(set) var sps: [UInt8]?
    public private(set) var pps: [UInt8]?
    /// Access units dropped because a packet of theirs was lost or they broke a bound.
    public private(set) var droppedAccessUnits = 0
    /// Why the last one was dropped.
    public private(set) var lastDrop: String?

    private var clock = RTPClock()
    private var current: (timestamp: Int64, nals: [[UInt8]], bytes: Int, damaged: Bool)?
    private var fragment: [UInt8]?

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
            fragment = nil
        }
        if let c = current, c.timestamp != ts {
            // A new picture began without the last one's marker: the last one is whole if no
            // packet of it was lost.
            if let au = finish() { done.append(au) }
        }
        if current == nil { current = (ts, [], 0, false) }
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
            fragment = nil
            add(Array(payload))
        case 24:   // STAP-A
            aggregate(payload.dropFirst(1), minSize: 1, name: "a STAP-A")
        case 28:   // FU-A
            guard payload.count >= 2 else { damage("an FU-A without its header"); return }
            let header = payload[payload.startIndex + 1]
            fragmentUnit(header, nalHeader: [(first & 0xE0) | (header & 0x1F)], body: payload.dropFirst(2), name: "an FU-A")
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
            fragment = nil
            add(Array(payload))
        case 48:   // aggregation packet
            aggregate(payload.dropFirst(2), minSize: 2, name: "an aggregation packet")
        case 49:   // fragmentation unit
            guard payload.count >= 3 else { damage("a fragmentation unit without its header"); return }
            let header = payload[payload.startIndex + 2]
            fragmentUnit(header, nalHeader: [(b0 & 0x81) | ((header & 0x3F) << 1), b1], body: payload.dropFirst(3), name: "a fragmentation unit")
        default:
            // PACI (50) and reserved types.
            damage("a packet of H.265 NAL type \(type), which this client does not take")
        }
    }

    /// NAL units behind 16-bit sizes (STAP-A, H.265's AP), each size checked against what remains.
    private mutating func aggregate(_ units: ArraySlice<UInt8>, minSize: Int, name: String) {
        fragment = nil
        var i = units.startIndex
        while i < units.endIndex {
            guard units.endIndex - i >= 2 else { damage("\(name) ends inside a size"); return }
            let size = Int(units[i]) << 8 | Int(units[i + 1])
            i += 2
            guard size >= minSize, units.endIndex - i >= size else { damage("\(name) names a NAL unit of \(size) bytes past its end"); return }
            add(Array(units[i..<(i + size)]))
            i += size
        }
    }

    /// One piece of a fragmented NAL unit (FU-A, H.265's FU): its start bit opens the unit with
    /// `nalHeader`, its end bit hands it on; a piece without a start before it damages the unit.
    private mutating func fragmentUnit(_ header: UInt8, nalHeader: [UInt8], body: ArraySlice<UInt8>, name: String) {
        if header & 0x80 != 0 {
            fragment = nalHeader + body
        } else if fragment != nil {
            fragment! += body
        } else {
            damage("\(name) fragment whose start was lost")
            return
        }
        guard fragment!.count <= Self.maxAccessUnitBytes else { fragment = nil; damage("a NAL unit over \(Self.maxAccessUnitBytes) bytes"); return }
        if header & 0x40 != 0, let nal = fragment {
            fragment = nil
            add(nal)
        }
    }

    /// The NAL unit type of `nal` in this codec.
    func type(_ nal: [UInt8]) -> UInt8 { codec == .h264 ? nal[0] & 0x1F : (nal[0] >> 1) & 0x3F }

    private mutating func add(_ nal: [UInt8]) {
        // Only the counts are read out: the NAL units are appended in place (a copy of `current`
        // held here would make each append copy the whole access unit).
        guard let damaged = current?.damaged, !damaged, !nal.isEmpty else { return }
        let (count, bytes) = (current!.nals.count, current!.bytes)
        if nal.count <= Self.maxParameterSetBytes {
            switch (codec, type(nal)) {
            case (.h264, 7), (.h265, 33): sps = nal
            case (.h264, 8), (.h265, 34): pps = nal
            case (.h265, 32): vps = nal
            default: break
            }
        }
        guard count < Self.maxNALUnits, bytes + nal.count <= Self.maxAccessUnitBytes else {
            damage("an access unit over \(Self.maxNALUnits) NAL units or \(Self.maxAccessUnitBytes) bytes")
            return
        }
        current!.nals.append(nal)
        current!.bytes += nal.count
    }

    private mutating func damage(_ why: String) {
        if current != nil, current!.damaged == false {
            current!.damaged = true
            current!.nals = []
            lastDrop = why
        }
    }

    private mutating func finish() -> AccessUnit? {
        defer { current = nil; fragment = nil }
        guard let c = current else { return nil }
        if c.damaged { droppedAccessUnits += 1; return nil }
        guard !c.nals.isEmpty else { return nil }
        let keyframe = c.nals.contains { codec == .h264 ? type($0) == 5 : (16...21).contains(type($0)) }
        return AccessUnit(timestamp: c.timestamp, nalUnits: c.nals, isKeyframe: keyframe)
    }
}
