import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// One link of a box's evidence chain: a finished segment, or a stretch with no footage and why.
/// Every record names the previous record's hash, so removing, reordering or inserting a record
/// breaks a link a verifier finds; each is sealed with the box's key (`SealedRecord`).
///
/// A record travels as its `body`, the exact UTF-8 bytes of its JSON (keys sorted, no spaces):
/// its hash is SHA-256 of those bytes as they are, so a verifier never has to re-encode
/// anything to check it (README, "Evidence bundles"). Times are integer milliseconds since the
/// Unix epoch; hashes are lowercase hex.
public struct ChainRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case segment, gap }

    /// Format version (1).
    public var version: Int
    public var device: String
    /// 1 for a box's first record, then one more for each.
    public var seq: Int64
    /// The previous record's hash (`ChainRecord.genesis` before the first).
    public var prev: String
    public var kind: Kind
    public var camera: String
    public var startMs: Int64
    public var endMs: Int64
    /// Whether the box's clock was synchronised (NTP) when this was recorded.
    public var clockSynchronized: Bool
    /// CLOCK_BOOTTIME at the start and the boot it belongs to (segments).
    public var monotonicStartNs: Int64?
    public var bootID: String?
    /// The segment file's name, its media bytes (everything before the seal box) and their
    /// SHA-256, and the SHA-256 of each piece of them: piece 0 is the header (`ftyp`, `moov`),
    /// then one per fragment (`moof` + `mdat`), so one damaged fragment is named alone.
    public var file: String?
    public var mediaBytes: Int64?
    public var mediaSHA256: String?
    public var pieces: [String]?
    public var codec: String?
    /// Why there is no footage (gaps): "camera down", "box off", "recorder stopped"...
    public var reason: String?
    /// The segment's activity summary (issue 14: `Activity.ActivitySummary`, lowercase hex),
    /// sealed with it; absent when the box does not index activity.
    public var activity: String?
    /// The software that made the record (issue 24: which release sealed each segment, so a
    /// court can tell what made a clip): `junction 1.2.0 slot b`, 1–64 printable ASCII bytes.
    /// Absent in records of boxes from before updates.
    public var software: String?

    public static let genesis = String(repeating: "0", count: 64)
    /// Bounds a verifier holds a record to (a 1-hour segment at one fragment a second has 3 601
    /// pieces). The body's bound holds a record at every other bound at once: 8192 pieces of 67
    /// bytes (549 kB), the longest activity (58 kB), the longest reason and names (issue 22: it
    /// was 512 kB, under what `maxPieces` allows).
    public static let maxBodyBytes = 640 * 1024
    public static let maxPieces = 8192
    /// A gap's reason (the box writes at most half of it).
    public static let maxReasonCharacters = 1000
    /// An hour of keyframes at two a second (`ActivitySummary.maxEntries`), in hex.
    public static let maxActivityCharacters = 2 * (21 + 7200 * 4)
    public static let maxSoftwareBytes = 64

    /// Whether `s` is a software name a record may carry: 1–64 bytes of printable ASCII.
    public static func isSoftware(_ s: String) -> Bool {
        (1...maxSoftwareBytes).contains(s.utf8.count) && s.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }

    public init(device: String, seq: Int64, prev: String, kind: Kind, camera: String, start: Timestamp, end: Timestamp,
                clockSynchronized: Bool, monotonicStartNs: Int64? = nil, bootID: String? = nil, file: String? = nil,
                mediaBytes: Int64? = nil, mediaSHA256: String? = nil, pieces: [String]? = nil, codec: String? = nil, reason: String? = nil,
                activity: String? = nil, software: String? = nil) {
        self.version = 1
        self.software = software
        self.device = device
        self.seq = seq
        self.prev = prev
        self.kind = kind
        self.camera = camera
        self.startMs = start.milliseconds
        self.endMs = end.milliseconds
        self.clockSynchronized = clockSynchronized
        self.monotonicStartNs = monotonicStartNs
        self.bootID = bootID
        self.file = file
        self.mediaBytes = mediaBytes
        self.mediaSHA256 = mediaSHA256
        self.pieces = pieces
        self.codec = codec
        self.reason = reason
        self.activity = activity
    }

    enum CodingKeys: String, CodingKey {
        case version = "v", device, seq, prev, kind, camera, file, pieces, codec, reason, activity, software
        case startMs = "start_ms", endMs = "end_ms", clockSynchronized = "clock_synced", monotonicStartNs = "mono_start_ns"
        case bootID = "boot_id", mediaBytes = "media_bytes", mediaSHA256 = "media_sha256"
    }

    public var start: Timestamp { Timestamp(milliseconds: startMs) }
    public var end: Timestamp { Timestamp(milliseconds: endMs) }

    /// The record's bytes: its JSON with sorted keys, made once by the box and kept as is.
    public func body() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Reads a body, or says why it is not a record.
    public static func parse(_ body: String) throws(ChainError) -> ChainRecord {
        guard body.utf8.count <= maxBodyBytes else { throw .malformed("a record of \(body.utf8.count) bytes (at most \(maxBodyBytes))") }
        let record: ChainRecord
        do { record = try JSONDecoder().decode(ChainRecord.self, from: Data(body.utf8)) } catch {
            throw .malformed("not a chain record: \(error)")
        }
        guard record.version == 1 else { throw .malformed("record version \(record.version) (this verifier reads 1)") }
        // Every number bounded here, where it is read (issue 22): times in years 0001–9999,
        // sequence numbers 1…2^53, sizes up to 2^50, boot times up to 2^62 ns; nothing behind
        // this sees a value near Int64's ends.
        guard Bounds.sequence.contains(record.seq) else {
            throw .malformed("record sequence \(Bounds.outside(record.seq, Bounds.sequence))")
        }
        guard isHash(record.prev), Timestamp(validMilliseconds: record.startMs) != nil, Timestamp(validMilliseconds: record.endMs) != nil,
              record.endMs >= record.startMs else {
            throw .malformed("record \(record.seq): previous hash or times out of their bounds (years 0001–9999, the end not before the start)")
        }
        if let mono = record.monotonicStartNs, !Bounds.bootNanoseconds.contains(mono) {
            throw .malformed("record \(record.seq): boot time \(Bounds.outside(mono, Bounds.bootNanoseconds))")
        }
        guard PlainName.isValid(record.device), PlainName.isValid(record.camera), record.bootID.map({ $0.utf8.count <= 64 }) ?? true,
              record.codec.map({ $0.utf8.count <= 64 }) ?? true, record.reason.map({ $0.count <= maxReasonCharacters }) ?? true else {
            throw .malformed("record \(record.seq): its device, camera, boot id, codec or reason is not a plain, bounded name")
        }
        if let s = record.software, !isSoftware(s) {
            throw .malformed("record \(record.seq): its software is not 1–\(maxSoftwareBytes) bytes of printable ASCII")
        }
        if record.kind == .segment {
            guard let sha = record.mediaSHA256, isHash(sha), let pieces = record.pieces, !pieces.isEmpty, pieces.count <= maxPieces,
                  pieces.allSatisfy(isHash), let bytes = record.mediaBytes, Bounds.bytes.contains(bytes), let file = record.file, PlainName.isValid(file)
            else { throw .malformed("segment record \(record.seq) lacks its file, hashes, size or pieces") }
        }
        if let a = record.activity {
            guard a.utf8.count <= maxActivityCharacters, bytes(fromHex: a) != nil else {
                throw .malformed("record \(record.seq): its activity is not hex of at most \(maxActivityCharacters) characters")
            }
        }
        return record
    }

    /// SHA-256 of a body, in hex.
    public static func hash(_ body: String) -> String { hex(SHA256.hash(data: Data(body.utf8))) }

    public static func isHash(_ s: String) -> Bool { s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) } }
}

/// What is wrong with a chain, a record or a seal.
public enum ChainError: Error, Equatable, CustomStringConvertible, Sendable {
    case malformed(String)
    case badKey(String)
    case storage(String)

    public var description: String {
        switch self {
        case .malformed(let s): "malformed: \(s)"
        case .badKey(let s): "device key: \(s)"
        case .storage(let s): s
        }
    }
}
