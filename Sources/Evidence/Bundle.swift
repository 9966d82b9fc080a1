import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Wire

/// An evidence bundle's proof folder (issue 13; README, "Evidence bundles"): beside the joined
/// MP4 and its manifest, everything a third party needs to check the footage without the box,
/// the commune or the network.
///
///     <stem>.proof/
///       device-key.pub        the box's Ed25519 public key, base64, one line
///       chain.jsonl           sealed records, one JSON object {"body":…,"signature":…} a line,
///                             in order: from the record before the range to the first record
///                             the commune countersigned at or after its end
///       countersigns.jsonl    the commune's countersignatures of the chain head, one a line
///       key-binding.json      the commune's binding of the device key (when the box has one)
///       manifest.sig          the exporter's signature of the manifest (`ManifestSeal`)
///       segments/<file>.mp4   each sealed original segment of the range, byte for byte
public enum Bundle {
    public static let keyFile = "device-key.pub"
    public static let chainFile = "chain.jsonl"
    public static let countersignFile = "countersigns.jsonl"
    public static let segmentsDir = "segments"
    public static let bindingFile = "key-binding.json"
    /// Bounds the verifier holds a bundle to: 10^6 records (115 days of 10-s segments) of up to
    /// ~2 kB a line (a 10-s segment's record with its 11 pieces is ~1.3 kB). The chain is streamed,
    /// so its size costs time, never memory.
    public static let maxChainBytes: Int64 = 2 << 30
    public static let maxRecords = 1_000_000

    /// Writes a proof folder. `segments` are (file name, path of the sealed original).
    public static func writeProof(into dir: String, publicKey: String, chain: [SealedRecord], countersigns: [Heartbeat.Countersign],
                                  binding: KeyBinding? = nil, segments: [(name: String, path: String)]) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/" + segmentsDir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func lines<T: Encodable>(_ items: [T]) throws -> Data {
            var data = Data()
            for item in items { data += try encoder.encode(item); data.append(0x0A) }
            return data
        }
        try Data((publicKey + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/" + keyFile))
        try lines(chain).write(to: URL(fileURLWithPath: dir + "/" + chainFile))
        try lines(countersigns).write(to: URL(fileURLWithPath: dir + "/" + countersignFile))
        if let binding { try (encoder.encode(binding) + Data([0x0A])).write(to: URL(fileURLWithPath: dir + "/" + bindingFile)) }
        for s in segments {
            let target = dir + "/" + segmentsDir + "/" + s.name
            if fm.fileExists(atPath: target) { try fm.removeItem(atPath: target) }
            try fm.copyItem(atPath: s.path, toPath: target)
        }
    }

    /// Signs the manifest written at `manifestPath` into its proof folder `proofDir`.
    public static func signManifest(at manifestPath: String, proof proofDir: String, signer: ManifestSeal.Signer, key: DeviceKey) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let seal = try ManifestSeal.make(manifest: data, signer: signer, key: key)
        try (encoder.encode(seal) + Data([0x0A])).write(to: URL(fileURLWithPath: proofDir + "/" + ManifestSeal.file))
    }
}
