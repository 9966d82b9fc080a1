import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// One thing wrong with a chain or a file, said so a person can act on it.
public struct ChainFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        case malformed, badSeal = "bad_seal", wrongDevice = "wrong_device", brokenLink = "broken_link", missing
        case reordered, timeBackwards = "time_backwards", changedBytes = "changed_bytes", missingFile = "missing_file"
    }

    public var kind: Kind
    public var seq: Int64?
    public var message: String

    public init(_ kind: Kind, seq: Int64?, _ message: String) {
        self.kind = kind
        self.seq = seq
        self.message = message
    }

    public var description: String { message }
}

/// Checks a stretch of a box's chain without the box, the index or the network: each seal is
/// the expected key's, each record names the one before it, none is missing, moved or from
/// another device, times never run backwards within one boot; and a segment file's bytes are
/// the ones its record vouches for, naming the fragment that differs.
public enum ChainVerifier {
    /// Within one boot the monotonic clock cannot run backwards; wall times may be stepped by
    /// NTP, so they are held to this much overlap only.
    public static let allowedOverlapMs: Int64 = 2000

    /// Verifies `sealed` in order. `after`, when given, is the record just before the first
    /// (its hash and sequence). Returns the records read and everything found wrong.
    public static func verify(_ sealed: [SealedRecord], key: Curve25519.Signing.PublicKey, device: String,
                              after: (seq: Int64, hash: String)? = nil) -> (records: [ChainRecord], findings: [ChainFinding]) {
        var walker = Walker(key: key, device: device, after: after)
        var records: [ChainRecord] = [], findings: [ChainFinding] = []
        for s in sealed {
            let (record, found) = walker.next(s)
            if let record { records.append(record) }
            findings += found
        }
        return (records, findings)
    }

    /// The same checks one record at a time, holding only the record before: a verifier reads a
    /// chain of any length in bounded memory (issue 22: a bundle's 10^6 records).
    public struct Walker {
        let key: Curve25519.Signing.PublicKey
        let device: String
        var previous: (seq: Int64, hash: String, record: ChainRecord?)?

        public init(key: Curve25519.Signing.PublicKey, device: String, after: (seq: Int64, hash: String)? = nil) {
            self.key = key
            self.device = device
            previous = after.map { ($0.seq, $0.hash, nil) }
        }

        /// The record (nil when it cannot be read) and what is wrong with it or its link.
        public mutating func next(_ s: SealedRecord) -> (ChainRecord?, [ChainFinding]) {
            var findings: [ChainFinding] = []
            let record: ChainRecord
            do { record = try ChainRecord.parse(s.body) } catch {
                previous = nil
                return (nil, [.init(.malformed, seq: nil, "a record cannot be read (\(error)): nothing after it can be vouched for")])
            }
            let hash = s.hash
            if !s.isSealed(by: key) {
                findings.append(.init(.badSeal, seq: record.seq,
                    "record \(record.seq) (\(describe(record))): its seal is not this box's key (altered after sealing, or signed by another key)"))
            }
            if record.device != device {
                findings.append(.init(.wrongDevice, seq: record.seq, "record \(record.seq) belongs to box \"\(TerminalText.safe(record.device))\", not \"\(device)\""))
            }
            if let p = previous {
                if record.seq <= p.seq {
                    findings.append(.init(.reordered, seq: record.seq, "record \(record.seq) comes after record \(p.seq): records were moved or repeated"))
                } else if record.seq > p.seq.adding(saturating: 1) {
                    findings.append(.init(.missing, seq: record.seq,
                        "records \(p.seq.adding(saturating: 1))–\(record.seq - 1) are missing before record \(record.seq): footage or gaps were removed"))
                } else if record.prev != p.hash {
                    findings.append(.init(.brokenLink, seq: record.seq, "record \(record.seq) does not follow record \(p.seq): the chain was altered between them"))
                }
                if let pr = p.record, pr.bootID != nil, pr.bootID == record.bootID, record.startMs < pr.endMs.subtracting(saturating: allowedOverlapMs) {
                    findings.append(.init(.timeBackwards, seq: record.seq,
                        "record \(record.seq) starts at \(record.start), before record \(pr.seq) ended (\(pr.end)) in the same boot"))
                }
            }
            previous = (record.seq, hash, record)
            return (record, findings)
        }
    }

    /// Checks a segment file against its record: its media bytes hash to `media_sha256`, or
    /// else which pieces (0: the header; n: the n-th fragment) differ.
    public static func verifyFile(path: String, record: ChainRecord) -> ChainFinding? {
        guard let bytes = record.mediaBytes, let sha = record.mediaSHA256, let pieces = record.pieces else {
            return .init(.malformed, seq: record.seq, "record \(record.seq) is not a segment's")
        }
        let hasher: PieceHasher
        switch PieceHasher.hash(path: path, count: bytes, maxPieces: pieces.count) {
        case .missing: return .init(.missingFile, seq: record.seq, "\(record.file ?? path): the file is missing")
        case .notAFile: return .init(.changedBytes, seq: record.seq, "\(record.file ?? path): not a plain file (a folder, a device or a pipe)")
        case .short(let size):
            return .init(.changedBytes, seq: record.seq, "\(record.file ?? path): \(size) bytes, shorter than the \(bytes) sealed: it was cut")
        case .unreadable(let why): return .init(.changedBytes, seq: record.seq, "\(record.file ?? path): cannot be read (\(why))")
        case .hashed(let h): hasher = h
        }
        let (got, _) = hasher.finish()
        if got == sha { return nil }
        // Which fragments changed and the seconds they held, found without trusting the damaged
        // bytes' own structure (FragmentMap).
        let which = FragmentMap.damage(path: path, record: record)?.summary ?? "its pieces no longer line up with the sealed ones"
        return .init(.changedBytes, seq: record.seq, "\(record.file ?? path): bytes changed since the box sealed it: \(which)")
    }

    static func describe(_ r: ChainRecord) -> String {
        r.kind == .segment ? "segment \(r.file ?? "?") \(r.start)" : "gap \(r.start)–\(r.end) (\(r.reason ?? "?"))"
    }
}
