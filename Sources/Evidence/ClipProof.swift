import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// What the commune makes of a clip's seal when it arrives (issue 13): `verified` (sealed by
/// the device's enrolled key, and the media bytes are the ones sealed), `unverified` (no seal,
/// or no key to check it with yet, or not the enrolled key), `damaged` (issue 22: the box said
/// its card damaged the file, the seal is genuine, and the detail names the fragments still
/// intact and the seconds lost) or `failed` (sealed by the enrolled key but something differs),
/// with the reason in words.
public struct ClipProof: Sendable, Equatable {
    public enum Status: String, Sendable, Codable { case verified, unverified, damaged, failed }

    public var status: Status
    public var detail: String
    /// The segment's record sequence number, and every sealed record the clip carried (its
    /// own, and the gaps before it), for the commune's copy of the chain.
    public var seq: Int64?
    public var records: [SealedRecord]

    public init(status: Status, detail: String, seq: Int64? = nil, records: [SealedRecord] = []) {
        self.status = status
        self.detail = detail
        self.seq = seq
        self.records = records
    }

    /// Examines the clip at `path` from `device`; `enrolledKey` is the device's key as the
    /// commune holds it (base64), `namedSeq` the record its Upload-Metadata names;
    /// `declaredDamaged` when the box sent it as damaged on its card.
    public static func examine(path: String, device: String, enrolledKey: String?, namedSeq: Int64? = nil,
                               declaredDamaged: Bool = false) -> ClipProof {
        guard let (offset, seal) = SealBox.find(path: path) else {
            return .init(status: .unverified, detail: "the clip carries no seal (a box without sealing, or footage recorded before it)")
        }
        let record: ChainRecord
        do { record = try ChainRecord.parse(seal.record) } catch {
            return .init(status: .failed, detail: "its seal cannot be read: \(error)")
        }
        let records = seal.records
        guard let enrolledKey, let key = DeviceKey.publicKey(base64: enrolledKey) else {
            return .init(status: .unverified, detail: "no key is enrolled for \(device) yet: the seal cannot be checked", seq: record.seq, records: records)
        }
        guard seal.key == enrolledKey else {
            return .init(status: .unverified, detail: "sealed by a key that is not the one enrolled for \(device) (commune devices rekey)",
                         seq: record.seq, records: records)
        }
        if !seal.sealed.isSealed(by: key) { return .init(status: .failed, detail: "its seal is not valid under the box's key", seq: record.seq) }
        if record.device != device { return .init(status: .failed, detail: "its seal names device \(TerminalText.safe(record.device))", seq: record.seq) }
        if let namedSeq, namedSeq != record.seq {
            return .init(status: .failed, detail: "its upload names chain record \(namedSeq), its seal is record \(record.seq)", seq: record.seq)
        }
        if offset != record.mediaBytes { return .init(status: .failed, detail: "its seal is not where the sealed media ends", seq: record.seq) }
        for gap in seal.gaps ?? [] where !gap.isSealed(by: key) {
            return .init(status: .failed, detail: "a gap record it carries is not sealed by the box's key", seq: record.seq)
        }
        if let problem = ChainVerifier.verifyFile(path: path, record: record) {
            // The box said so, and its seal (record and gaps) is genuine: what is left of the
            // footage is still evidence, and the record belongs in the commune's chain.
            if declaredDamaged, problem.kind == .changedBytes, let damage = FragmentMap.damage(path: path, record: record) {
                return .init(status: .damaged, detail: "damaged on the box's card: \(damage.summary)", seq: record.seq, records: records)
            }
            return .init(status: .failed, detail: problem.message, seq: record.seq)
        }
        return .init(status: .verified, detail: "sealed by \(device)'s key \(DeviceKey.fingerprint(of: key)), record \(record.seq)",
                     seq: record.seq, records: records)
    }
}
