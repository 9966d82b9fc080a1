import SystemCrypto
@testable import Evidence
import Foundation
import Testing
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Issue 23 (first part): every byte of a segment file is accounted for, only plain files are
/// read, every file in `segments/` is named by a record (a stray one sealed past the chain's end
/// proves the tail was cut), and a bare manifest name works from the bundle's own folder.
@Suite struct BundleStrictnessTests {
    let bundles = BundleTests()

    func segments(_ proof: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: proof + "/segments").sorted().map { proof + "/segments/" + $0 }
    }

    @Test func aGenuineBundleStillVerifies() async throws {
        let (manifest, _, _) = try await bundles.bundle()
        #expect(bundles.verify(manifest).1 == 0)
    }

    /// Bytes after the seal box, a stripped seal box, an edited one: each is named, not blamed
    /// on the manifest.
    @Test func theSealBoxMustBeTheChainsAndEndTheFile() async throws {
        for damage in ["junk after", "stripped", "edited"] {
            let (manifest, proof, _) = try await bundles.bundle()
            let file = try segments(proof)[1]
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            let (offset, seal) = try #require(SealBox.find(path: file))
            switch damage {
            case "junk after": bytes += Array("trailing".utf8)
            case "stripped": bytes = Array(bytes.prefix(Int(offset)))
            default:
                var edited = seal
                edited.record = edited.record.replacingOccurrences(of: "\"codec\":\"h264\"", with: "\"codec\":\"h265\"")
                #expect(edited.record != seal.record)
                bytes = Array(bytes.prefix(Int(offset))) + edited.encoded()
            }
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let (report, status) = bundles.verify(manifest)
            #expect(status == 1 && report.problems.contains { $0.contains("seal box") && !$0.contains("manifest") }, "\(damage): \(report.problems)")
        }
    }

    /// Two segments swapped by renaming: each is named as holding the other record's footage.
    @Test func swappedSegmentsAreNamedAsSwapped() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let files = try segments(proof)
        try FileManager.default.moveItem(atPath: files[0], toPath: files[0] + ".tmp")
        try FileManager.default.moveItem(atPath: files[1], toPath: files[0])
        try FileManager.default.moveItem(atPath: files[0] + ".tmp", toPath: files[1])
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.filter { $0.contains("swapped or replayed") }.count == 2, "\(report.problems)")
    }

    @Test func aSymlinkInsteadOfASegmentIsRefused() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let file = try segments(proof)[2]
        try FileManager.default.removeItem(atPath: file)
        #expect(symlink("/etc/hostname", file) == 0)
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("symbolic link") }, "\(report.problems)")
    }

    /// A file no record names is reported; one this box sealed past the chain's end is the proof
    /// that the chain given was cut.
    @Test func unnamedFilesAreReportedAndAStraySealedTailProvesACut() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        try Data(repeating: 1, count: 100).write(to: URL(fileURLWithPath: proof + "/segments/extra.bin"))
        var (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("extra.bin is named by no record") }, "\(report.problems)")
        try FileManager.default.removeItem(atPath: proof + "/segments/extra.bin")

        // Cut the chain's last record (a segment): its file stays, sealed as that record.
        let chain = proof + "/chain.jsonl"
        var lines = try String(contentsOfFile: chain, encoding: .utf8).split(separator: "\n").map(String.init)
        let last = try #require(lines.popLast().flatMap { try? JSONDecoder().decode(SealedRecord.self, from: Data($0.utf8)) }?.record)
        try (lines.joined(separator: "\n") + "\n").write(toFile: chain, atomically: true, encoding: .utf8)
        try Data("".utf8).write(to: URL(fileURLWithPath: proof + "/countersigns.jsonl"))
        (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("sealed by this box as record \(last.seq)") && $0.contains("were cut") },
                "\(report.problems)")
    }

    /// `junction verify NAME.manifest.json` from the bundle's folder looked for the proof at
    /// the filesystem's root: a bare name's folder is ".".
    @Test func aBareManifestNameIsInItsOwnFolder() {
        #expect(BundleVerifier.folder(of: "b.manifest.json") == ".")
        #expect(BundleVerifier.folder(of: "/media/usb/b.manifest.json") == "/media/usb")
        #expect(BundleVerifier.folder(of: "sub/b.manifest.json") == "sub")
    }

    /// A per-segment time edited in the manifest (what a person reads) is named; an unreadable
    /// bundle says so without a 1970 range.
    @Test func editedManifestTimesAndUnreadableBundles() async throws {
        let (manifest, _, key) = try await bundles.bundle()
        // Signed again, as if the exporter had written it so: the time is still checked against the record.
        try bundles.reexport(manifest, key: key) { $0.segments[1].start = $0.segments[1].start + 1 }
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("its sealed record says") }, "\(report.problems)")
        let (unreadable, code) = bundles.verify("/nonexistent/b.manifest.json")
        let words = BundleVerifier.render(unreadable)
        #expect(code == 4 && words.hasPrefix("CANNOT BE READ") && !words.contains("1970"), "\(words)")
    }
}
