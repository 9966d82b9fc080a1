import Foundation

/// `junction verify` and `commune verify` share this: read a bundle, print the answer, and exit
/// 0 (authentic and complete but for the gaps the box declared), 1 (not authentic: something
/// was changed, removed, moved or signed by another key) or 2 (authentic, but footage is missing
/// or a stretch is accounted for by no record).
public enum VerifyCommand {
    public static let discussion = """
        Needs no network, no index and no box: only the folder junction export or the desk wrote
        (the MP4, its .manifest.json and the .proof folder beside them).
        Exit status: 0 authentic and complete (except the gaps the box declared), 1 NOT authentic,
        2 authentic but not complete (footage missing, or a stretch no record accounts for).
        Example:
          junction verify /media/usb/thaithuy-0042-cam1-20261129T143500.000Z.manifest.json
        """

    /// The report and the exit status for `path` (a manifest, or a folder with one).
    public static func run(path: String) -> (BundleReport, Int32) {
        guard let manifest = BundleVerifier.manifestPath(path) else {
            return (BundleVerifier.failed("\(path): no export manifest there (give the .manifest.json, or the folder holding exactly one)"), 1)
        }
        let report = BundleVerifier.verify(manifest: manifest)
        return (report, !report.authentic ? 1 : report.complete ? 0 : 2)
    }

    /// Verifies, prints the answer (words or JSON) and returns the exit status.
    public static func main(path: String, json asJSON: Bool) -> Int32 {
        let (report, status) = run(path: path)
        print(asJSON ? json(report) : BundleVerifier.render(report))
        return status
    }

    public static func json(_ report: BundleReport) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? e.encode(report)) ?? Data(), as: UTF8.self)
    }
}
