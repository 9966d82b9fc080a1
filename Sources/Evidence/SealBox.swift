import Foundation
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

    /// The seal box of the file at `path` and where it starts: the first top-level seal box
    /// after the media. Nil when the file has none (not sealed yet, or cut before its seal).
    public static func find(path: String) -> (offset: Int64, seal: SealBox)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let length = Int64(st.st_size)
        var offset: Int64 = 0
        var header = [UInt8](repeating: 0, count: 24)
        for _ in 0..<1_000_000 {  // top-level boxes: a few per fragment
            guard length - offset >= 24 else { return nil }
            guard header.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, 24, off_t(offset)) }) == 24 else { return nil }
            let size32 = header[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let size: Int64
            if size32 == 1 {
                let large = header[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                guard large <= UInt64(Int64.max) else { return nil }
                size = Int64(large)
            } else {
                size = Int64(size32)
            }
            guard size >= 8, size <= length - offset else { return nil }
            if size32 != 1, Array(header[4..<8]) == Array("uuid".utf8), Array(header[8..<24]) == uuid, size <= Int64(maxBytes) {
                var box = [UInt8](repeating: 0, count: Int(size))
                guard box.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, Int(size), off_t(offset)) }) == Int(size),
                      let seal = decode(box) else { return nil }
                return (offset, seal)
            }
            offset += size
        }
        return nil
    }
}
