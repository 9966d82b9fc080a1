/// AAC over RTP in RFC 3640's AAC-hbr mode (`a=fmtp:97 streamtype=5; mode=AAC-hbr;
/// sizelength=13; indexlength=3; indexdeltalength=3; config=1408`): a packet carries an
/// AU-headers section (each header an access unit's size and index), then the access units.
/// Several whole frames in one packet get timestamps `samplesPerFrame` apart; a frame larger than
/// a packet is carried in fragments, the marker on the last. A sequence gap drops a fragmented
/// frame whole; whole frames in later packets are not affected.
///
/// Bounds: sizes and indexes 1–16 bits wide (the SDP's), an AU-headers section within the
/// packet, 64 frames a packet, 8 KiB a frame, `config` (the AudioSpecificConfig) 64 bytes.
public struct AACDepacketizer: Sendable {
    public static let maxFramesPerPacket = 64
    public static let maxFrameBytes = 8 << 10

    public struct Frame: Sendable, Equatable {
        /// On the 64-bit RTP timeline (the SDP's clock rate: the sample rate).
        public var timestamp: Int64
        public var data: [UInt8]
    }

    public let sizeLength: Int
    public let indexLength: Int
    public let indexDeltaLength: Int
    public let samplesPerFrame: Int64
    /// The AudioSpecificConfig from `config`, for the muxer.
    public let config: [UInt8]
    public private(set) var droppedFrames = 0

    private var clock = RTPClock()
    private var fragment: (timestamp: Int64, size: Int, data: [UInt8])?

    /// From a media section's format parameters (names lower-cased, as `SessionDescription` keeps them).
    public init(parameters: [String: String], samplesPerFrame: Int = 1024) throws(RTSPError) {
        func bits(_ key: String, default d: Int) throws(RTSPError) -> Int {
            guard let text = parameters[key] else { return d }
            guard let v = Int(text), (0...16).contains(v) else { throw RTSPError("the camera's SDP gives \(key)=\(printable(text.prefix(10))) (0–16 bits)") }
            return v
        }
        guard parameters["mode"]?.lowercased() == "aac-hbr" || parameters["mode"] == nil else {
            throw RTSPError("the camera's AAC is in mode \(printable((parameters["mode"] ?? "").prefix(20))), not AAC-hbr")
        }
        sizeLength = try bits("sizelength", default: 13)
        indexLength = try bits("indexlength", default: 3)
        indexDeltaLength = try bits("indexdeltalength", default: 3)
        guard sizeLength >= 1 else { throw RTSPError("the camera's SDP gives sizelength=0: its AAC frames have no sizes") }
        self.samplesPerFrame = Int64(max(1, samplesPerFrame))
        let hex = parameters["config"] ?? ""
        guard hex.utf8.count <= 128, hex.utf8.count % 2 == 0 else { throw RTSPError("the camera's AAC config \"\(printable(hex.prefix(20)))\" is not hex of at most 64 bytes") }
        var config: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            guard let b = UInt8(hex[i..<j], radix: 16) else { throw RTSPError("the camera's AAC config \"\(printable(hex.prefix(20)))\" is not hex") }
            config.append(b)
            i = j
        }
        self.config = config
    }

    public mutating func push(_ p: RTPPacket) -> [Frame] {
        let order = clock.sequence(p.sequence)
        if order == .old { return [] }
        if order != .next, fragment != nil { fragment = nil; droppedFrames += 1 }
        let ts = clock.timestamp(p.timestamp)
        let b = p.payload
        guard b.count >= 2 else { return drop() }
        let headerBits = Int(b[b.startIndex]) << 8 | Int(b[b.startIndex + 1])
        let headerBytes = (headerBits + 7) / 8
        guard headerBytes <= b.count - 2 else { return drop() }
        var reader = BitReader(bytes: b[(b.startIndex + 2)..<(b.startIndex + 2 + headerBytes)])
        var sizes: [Int] = []
        var used = 0
        while used < headerBits, sizes.count < Self.maxFramesPerPacket {
            let indexBits = sizes.isEmpty ? indexLength : indexDeltaLength
            guard headerBits - used >= sizeLength + indexBits, let size = reader.read(sizeLength), reader.read(indexBits) != nil else { return drop() }
            used += sizeLength + indexBits
            sizes.append(size)
        }
        guard used == headerBits, !sizes.isEmpty else { return drop() }
        var data = b[(b.startIndex + 2 + headerBytes)...]
        // One frame larger than this packet: a fragment (RFC 3640 §3.2.3.1).
        if sizes.count == 1, sizes[0] > data.count || fragment != nil {
            guard sizes[0] <= Self.maxFrameBytes else { return drop() }
            if fragment == nil { fragment = (ts, sizes[0], []) }
            guard fragment!.size == sizes[0], fragment!.timestamp == ts, fragment!.data.count + data.count <= sizes[0] else { fragment = nil; return drop() }
            fragment!.data += data
            if p.marker {
                defer { fragment = nil }
                guard fragment!.data.count == sizes[0] else { return drop() }
                return [Frame(timestamp: fragment!.timestamp, data: fragment!.data)]
            }
            return []
        }
        var frames: [Frame] = []
        for (i, size) in sizes.enumerated() {
            guard size <= Self.maxFrameBytes, size <= data.count else { return frames + drop() }
            frames.append(Frame(timestamp: ts &+ Int64(i) &* samplesPerFrame, data: Array(data.prefix(size))))
            data = data.dropFirst(size)
        }
        return frames
    }

    private mutating func drop() -> [Frame] {
        droppedFrames += 1
        return []
    }

    struct BitReader {
        let bytes: ArraySlice<UInt8>
        var bit = 0

        mutating func read(_ n: Int) -> Int? {
            guard n >= 0, n <= 32, bit + n <= bytes.count * 8 else { return nil }
            var v = 0
            for _ in 0..<n {
                let byte = bytes[bytes.startIndex + bit / 8]
                v = v << 1 | Int(byte >> (7 - UInt8(bit % 8)) & 1)
                bit += 1
            }
            return v
        }
    }
}
