/// An RTP packet (RFC 3550 §5.1) as an interleaved frame carries it: the fixed header, CSRCs and
/// an extension skipped by their own counts (each checked against the bytes there), padding
/// removed. Anything else is an `RTSPError` naming what is wrong.
public struct RTPPacket: Sendable, Equatable {
    public var marker: Bool
    public var payloadType: UInt8
    public var sequence: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    public var payload: ArraySlice<UInt8>

    public init(marker: Bool, payloadType: UInt8, sequence: UInt16, timestamp: UInt32, ssrc: UInt32, payload: ArraySlice<UInt8>) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
    }

    public init(_ b: [UInt8]) throws(RTSPError) { try self.init(b[...]) }

    /// From an interleaved frame's payload, a slice of the reader's buffer; `payload` is a slice
    /// of the same bytes (nothing is copied).
    public init(_ b: ArraySlice<UInt8>) throws(RTSPError) {
        let o = b.startIndex
        let count = b.count
        guard count >= 12 else { throw RTSPError("an RTP packet of \(count) bytes, shorter than its 12-byte header") }
        let b0 = b[o]
        guard b0 >> 6 == 2 else { throw RTSPError("an RTP packet of version \(b0 >> 6), not 2") }
        var start = 12 + Int(b0 & 0x0F) * 4
        var end = count
        guard start <= end else { throw RTSPError("an RTP packet whose \(b0 & 0x0F) CSRCs run past its end") }
        if b0 & 0x10 != 0 {
            guard start + 4 <= end else { throw RTSPError("an RTP packet whose extension header runs past its end") }
            let words = Int(b[o + start + 2]) << 8 | Int(b[o + start + 3])
            start += 4 + words * 4
            guard start <= end else { throw RTSPError("an RTP packet whose extension of \(words) words runs past its end") }
        }
        if b0 & 0x20 != 0 {
            let pad = Int(b[o + end - 1])
            guard pad >= 1, pad <= end - start else { throw RTSPError("an RTP packet with \(pad) bytes of padding in \(end - start)") }
            end -= pad
        }
        func u32(_ at: Int) -> UInt32 { UInt32(b[o + at]) << 24 | UInt32(b[o + at + 1]) << 16 | UInt32(b[o + at + 2]) << 8 | UInt32(b[o + at + 3]) }
        marker = b[o + 1] & 0x80 != 0
        payloadType = b[o + 1] & 0x7F
        sequence = UInt16(b[o + 2]) << 8 | UInt16(b[o + 3])
        timestamp = u32(4)
        ssrc = u32(8)
        payload = b[(o + start)..<(o + end)]
    }
}

/// RTP's 16-bit sequence numbers and 32-bit timestamps made monotonic: each new value is taken
/// as the nearest one to the last (a wrap goes on counting), so a 90 kHz clock runs for
/// 2^63 ticks instead of 13 hours. Lost packets are the forward gaps; a packet from behind (a
/// duplicate, or reordered on the camera's side) is reported, not counted as loss.
public struct RTPClock: Sendable, Equatable {
    public private(set) var lastSequence: Int64?
    public private(set) var lastTimestamp: Int64?
    /// Packets the sequence numbers say never arrived.
    public private(set) var lost: Int64 = 0

    public init() {}

    public enum Order: Equatable, Sendable {
        case next
        /// `missing` packets were skipped before this one.
        case gap(missing: Int64)
        /// Not newer than one already seen: dropped.
        case old
    }

    /// Takes a packet's sequence number.
    public mutating func sequence(_ s: UInt16) -> Order {
        guard let last = lastSequence else { lastSequence = Int64(s); return .next }
        let delta = Int64(Int16(bitPattern: s &- UInt16(truncatingIfNeeded: last)))
        guard delta > 0 else { return .old }
        lastSequence = last + delta
        if delta == 1 { return .next }
        lost &+= delta - 1
        return .gap(missing: delta - 1)
    }

    /// A packet's timestamp on a 64-bit timeline.
    public mutating func timestamp(_ t: UInt32) -> Int64 {
        guard let last = lastTimestamp else { lastTimestamp = Int64(t); return Int64(t) }
        let delta = Int64(Int32(bitPattern: t &- UInt32(truncatingIfNeeded: last)))
        let now = last.addingReportingOverflow(delta)
        lastTimestamp = now.overflow ? last : now.partialValue
        return lastTimestamp!
    }
}
