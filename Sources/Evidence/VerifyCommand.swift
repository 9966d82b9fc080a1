import SystemCrypto
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `junction verify` and `commune verify` share this: read a bundle, print the answer, and exit
/// with the verdict's status (the bundle format, "Exit status"): 0 authentic and complete but
/// for the gaps the box declared, 1 not authentic, 2 authentic but not complete, 3 consistent
/// but not anchored (no trusted commune key was given), 4 not a bundle that can be read.
public enum VerifyCommand {
    public static let discussion = """
        Needs no network, no index and no box: only the folder junction export or the desk wrote
        (the MP4, its .manifest.json and the .proof folder beside them), and the commune's
        published key to check the box's key against (--commune-key, or the trust file
        \(trustFile), one base64 key a line).
        Exit status: 0 authentic and complete (except the gaps the box declared), 1 NOT authentic,
        2 authentic but not complete (footage missing, or a stretch no record accounts for),
        3 consistent but not proven authentic (no trusted commune key: compare the fingerprints
        printed with the commune's), 4 not a bundle that can be read.
        The bundle format and every rule applied: Sources/Evidence/BUNDLE-FORMAT.md.
        Example:
          junction verify --commune-key 3q5S0x…= /media/usb/thaithuy-0042-cam1-20261129T143500.000Z.manifest.json
        """

    /// Where a commune installs the keys a machine trusts, one base64 key a line (# comments).
    public static let trustFile = "/etc/junction/commune-keys"
    static let maxTrustFileBytes = 64 << 10

    public struct TrustError: Error, CustomStringConvertible { public var description: String }

    /// The commune keys `values` name (each a base64 Ed25519 key, or a file of them), or, with
    /// none, those of the trust file when there is one, plus `also` (a commune's own key).
    public static func trustedKeys(_ values: [String], trustFile: String? = trustFile, also: [String] = []) throws(TrustError) -> [Curve25519.Signing.PublicKey] {
        var keys: [Curve25519.Signing.PublicKey] = []
        for value in values {
            if let key = DeviceKey.publicKey(base64: value.trimmingSpaces) { keys.append(key); continue }
            guard FileManager.default.fileExists(atPath: value) else {
                throw TrustError(description: "--commune-key \(value.prefix(80)) is neither a base64 Ed25519 public key (44 characters) nor a file of them")
            }
            keys += try readTrustFile(value)
        }
        if values.isEmpty, let trustFile, FileManager.default.fileExists(atPath: trustFile) { keys += try readTrustFile(trustFile) }
        if values.isEmpty { keys += also.compactMap(DeviceKey.publicKey(base64:)) }
        return keys
    }

    static func readTrustFile(_ path: String) throws(TrustError) -> [Curve25519.Signing.PublicKey] {
        guard case .data(let data) = BundleVerifier.readFile(path, max: maxTrustFileBytes) else {
            throw TrustError(description: "\(path) cannot be read as a trust file (a plain file of at most \(maxTrustFileBytes) bytes)")
        }
        var keys: [Curve25519.Signing.PublicKey] = []
        for (n, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let key = DeviceKey.publicKey(base64: line) else {
                throw TrustError(description: "\(path) line \(n + 1) is not a base64 Ed25519 public key")
            }
            keys.append(key)
        }
        return keys
    }

    /// The report and the exit status for `path` (a manifest, or a folder with one).
    public static func run(path: String, trusting trusted: [Curve25519.Signing.PublicKey] = []) -> (BundleReport, Int32) {
        guard let manifest = BundleVerifier.manifestPath(path) else {
            return (BundleVerifier.failed("\(path): no export manifest there (give the .manifest.json, or the folder holding exactly one)"),
                    BundleReport.Verdict.unreadable.exitStatus)
        }
        let report = BundleVerifier.verify(manifest: manifest, trusting: trusted)
        return (report, report.verdict.exitStatus)
    }

    /// Verifies, prints the answer (words or JSON) and returns the exit status.
    public static func main(path: String, trusting trusted: [Curve25519.Signing.PublicKey], json asJSON: Bool) -> Int32 {
        let (report, status) = run(path: path, trusting: trusted)
        print(asJSON ? json(report) : BundleVerifier.render(report))
        return status
    }

    public static func json(_ report: BundleReport) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? e.encode(report)) ?? Data(), as: UTF8.self)
    }
}
public typealias Curve25519PublicKey = Curve25519.Signing.PublicKey
