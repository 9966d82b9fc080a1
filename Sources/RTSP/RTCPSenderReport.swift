/// An RTCP sender report (RFC 3550 §6.4.1): the camera's wall clock (NTP) at one RTP timestamp,
/// which ties the stream's timeline to the camera's clock. Read from a compound RTCP packet (the
/// SR is first when there is one); receiver reports, SDES and BYE beside it are skipped by their
/// own lengths, each checked against the bytes there.
public struct RTCPSenderReport: Sendable, Equatable {
    public var ssrc: UInt32
    /// Seconds since 1900 (NTP), 32.32 fixed point.
    public var ntp: UInt64
    public var rtpTimestamp: UInt32
    public var packets: UInt32
    public var octets: UInt32

    /// The camera's clock as Unix milliseconds (NTP's epoch is 1900; 2 208 988 800 s before 1970).
    public var unixMilliseconds: Int64 {
        let seconds = Int64(ntp >> 32) - 2_208_988_800
        let fraction = Int64(((ntp & 0xFFFF_FFFF) * 1000) >> 32)
        return seconds * 1000 + fraction
    }

    /// The first sender report in a compound packet, nil when it has none; an error when a
    /// length in it runs past the end.
    public static func find(in b: [UInt8]) throws(RTSPError) -> RTCPSenderReport? {
        var i = 0
        // A compound packet of at most 64 parts: every loop over camera data is bounded.
        for _ in 0..<64 {
            guard b.count - i >= 4 else { return nil }
            guard b[i] >> 6 == 2 else { throw RTSPError("an RTCP packet of version \(b[i] >> 6), not 2") }
            let type = b[i + 1]
            let length = ((Int(b[i + 2]) << 8 | Int(b[i + 3])) + 1) * 4
            guard length <= b.count - i else { throw RTSPError("an RTCP packet of \(length) bytes in \(b.count - i)") }
            if type == 200 {
                guard length >= 28 else { throw RTSPError("an RTCP sender report of \(length) bytes, shorter than 28") }
                func u32(_ at: Int) -> UInt32 { UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3]) }
                return RTCPSenderReport(ssrc: u32(i + 4), ntp: UInt64(u32(i + 8)) << 32 | UInt64(u32(i + 12)), rtpTimestamp: u32(i + 16),
                                        packets: u32(i + 20), octets: u32(i + 24))
            }
            i += length
        }
        return nil
    }
}
