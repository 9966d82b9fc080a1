import FoundationEssentials
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The seal inside a segment file: a top-level `uuid` box after the last fragment, holding the
/// segment's chain record, its seal and the box's public key. Players skip it (an unknown
/// top-level box); `reindex` rebuilds the chain from it; it travels with the clip to the commune.
/// Its layout: size (4 bytes, big-endian) · `uuid` · the 16 bytes of `SealBox.uuid` · JSON
/// `{"key":…,"record":…,"signature":…,"v":1}`. The record's `media_bytes` say where the media
/// ends and the seal box begins.
public struct SealBox: Codable, Sendable, Equatable {
    public var version: Int
    /// The record's body, exactly as hashed and signed.
    public var record: String
    public var signature: String
    /// Base64 of the public key that made the signature.
    public var key: String
    /// The gap records sealed since the previous segment's, so that the files alone hold every
    /// record (`reindex`): a gap is carried by the segment recorded after it.
    public var gaps: [SealedRecord]?

    /// Every record the box holds, oldest first: the gaps it carries, then its segment's.
    public var records: [SealedRecord] { (gaps ?? []) + [sealed] }

    /// 4a756e63-7469-6f6e-2d73-65616c2d7631: "Junction-seal-v1" in ASCII.
    public static let uuid: [UInt8] = Array("Junction-seal-v1".utf8)
    /// A seal box is small; anything larger is not one of ours.
    public static let maxBytes = ChainRecord.maxBodyBytes + 4096 + maxGaps * 1024

    public init(sealed: SealedRecord, key: String, gaps: [SealedRecord]? = nil) {
        version = 1
        record = sealed.body
        signature = sealed.signature
        self.key = key
        self.gaps = gaps?.isEmpty == true ? nil : gaps
    }

    enum CodingKeys: String, CodingKey { case version = "v", record, signature, key, gaps }

    /// Gap records a seal box carries at most (a camera down for a day, retried every few s).
    public static let maxGaps = 200

    public var sealed: SealedRecord { SealedRecord(body: record, signature: signature) }

    /// The whole box, ready to append to the file.
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let payload = Array((try? encoder.encode(self)) ?? Data())
        let size = UInt32(8 + 16 + payload.count)
        return [UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff)] + Array("uuid".utf8) + Self.uuid + payload
    }

    /// Decodes the box's bytes (header included), or nil when it is not a seal box.
    public static func decode(_ box: [UInt8]) -> SealBox? {
        guard box.count >= 24, box.count <= maxBytes, Array(box[4..<8]) == Array("uuid".utf8), Array(box[8..<24]) == uuid,
              let seal = try? JSONDecoder().decode(SealBox.self, from: Data(box[24...])), seal.version == 1,
              (seal.gaps?.count ?? 0) <= maxGaps else { return nil }
        return seal
    }

    /// The seal box of the file at `path` and where it starts: the box that ends the file (the
    /// ring appends it last). Found from the end, so it does not depend on the media before it
    /// being well formed. Nil when the file does not end with one (not sealed yet, cut before
    /// its seal, or something appended after it).
    public static func find(path: String) -> (offset: Int64, seal: SealBox)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let length = Int64(st.st_size)
        // Most seals are ~2 kB: look at the last 64 kB first, then as far back as a seal may be.
        for window in [Int64(64 << 10), Int64(maxBytes)] {
            let count = min(length, window)
            guard count >= 24 else { return nil }
            var tail = [UInt8](repeating: 0, count: Int(count))
            guard tail.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, Int(count), off_t(length - count)) }) == Int(count) else { return nil }
            let marker = Array("uuid".utf8) + uuid
            var i = tail.count - 24
            while i >= 4 {
                if tail[i] == marker[0], Array(tail[i..<(i + 20)]) == marker {
                    let start = i - 4
                    let size = tail[start..<(start + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    if Int(size) == tail.count - start, let seal = decode(Array(tail[start...])) {
                        return (length - count + Int64(start), seal)
                    }
                }
                i -= 1
            }
            if count == length { return nil }
        }
        return nil
    }
}
