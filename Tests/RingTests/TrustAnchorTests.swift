import SystemCrypto
@testable import Evidence
import Foundation
import Testing
import Wire

/// Issue 23: a bundle is authentic only against a key the verifier trusts (the commune's
/// binding of the box's key, which countersignatures also name), and the manifest a person
/// reads is signed and checked against the records.
@Suite struct TrustAnchorTests {
    let bundles = BundleTests()

    /// Re-seals every record and every seal box under `forger`, as a forger with a key of their
    /// own would, and puts that key in device-key.pub: every seal verifies under it.
    func reseal(_ proof: String, with forger: DeviceKey) throws {
        func resealed(_ s: SealedRecord) throws -> SealedRecord {
            SealedRecord(body: s.body, signature: try forger.sign(Data(("junction-seal/1\n" + s.hash).utf8)).base64EncodedString())
        }
        let chain = proof + "/" + Bundle.chainFile
        let lines = try String(contentsOfFile: chain, encoding: .utf8).split(separator: "\n").map {
            String(decoding: try JSONEncoder().encode(try resealed(try JSONDecoder().decode(SealedRecord.self, from: Data($0.utf8)))), as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: chain, atomically: true, encoding: .utf8)
        for name in try FileManager.default.contentsOfDirectory(atPath: proof + "/segments") {
            let file = proof + "/segments/" + name
            let (offset, seal) = try #require(SealBox.find(path: file))
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))).prefix(Int(offset))
            let box = SealBox(sealed: try resealed(seal.sealed), key: forger.publicKeyBase64, gaps: try seal.gaps?.map(resealed))
            try Data(Array(bytes) + box.encoded()).write(to: URL(fileURLWithPath: file))
        }
        try (forger.publicKeyBase64 + "\n").write(toFile: proof + "/" + Bundle.keyFile, atomically: true, encoding: .utf8)
    }

    @Test func aGenuineBundleIsAnchoredByTheCommunesKeyAndSaysWhichKeysItReliedOn() async throws {
        let (manifest, _, key) = try await bundles.bundle()
        let (report, status) = bundles.verify(manifest)
        #expect(status == 0 && report.anchored && report.verdict == .authenticComplete, "\(report.problems)")
        #expect(report.reliedOn.contains { $0.contains(key.fingerprint) && $0.contains(bundles.commune.fingerprint) && $0.contains("bound to thaithuy-0042") })
        #expect(report.reliedOn.contains { $0.contains("the manifest signed by the box's device key \(key.fingerprint)") })
    }

    /// With no key to check against, a bundle is at most consistent: exit 3, with the
    /// fingerprints an officer must compare; another commune's key makes it NOT authentic.
    @Test func withoutAnAnchorItIsNeverAuthentic() async throws {
        let (manifest, _, key) = try await bundles.bundle()
        let (alone, status) = VerifyCommand.run(path: manifest)
        #expect(status == 3 && alone.authentic && !alone.anchored && alone.verdict == .unanchored, "\(alone.problems)")
        let words = BundleVerifier.render(alone)
        #expect(words.hasPrefix("CONSISTENT, BUT NOT PROVEN AUTHENTIC") && words.contains(key.fingerprint) && words.contains(bundles.commune.fingerprint), "\(words)")
        let other = DeviceKey(Curve25519.Signing.PrivateKey())
        let (foreign, code) = VerifyCommand.run(path: manifest, trusting: [other.publicKey])
        #expect(code == 1 && foreign.problems.contains { $0.contains("bound by no commune key you trust") && $0.contains(other.fingerprint) }, "\(foreign.problems)")
    }

    /// The forgery: every record and seal box re-sealed under a new key, that key in
    /// device-key.pub, the manifest signed again. The genuine binding and countersignature name
    /// the real key; a binding forged by the forger's own "commune" is not one the verifier trusts.
    @Test func aForgedBoxKeyWithTheGenuineCountersignatureIsNotAuthentic() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let forger = DeviceKey(Curve25519.Signing.PrivateKey())
        try reseal(proof, with: forger)
        // … and the manifest's hashes updated to the re-sealed files, signed by the forger's key.
        try bundles.reexport(manifest, key: forger) { m in
            for i in m.segments.indices { m.segments[i].sha256 = (try? BundleVerifier.sha256(proof + "/segments/" + (m.segments[i].file as NSString).lastPathComponent)) ?? "" }
        }
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1, "\(report.problems)")
        #expect(report.problems.contains { $0.contains(Bundle.bindingFile) && $0.contains("re-sealed under another key") }, "\(report.problems)")
        #expect(report.problems.contains { $0.contains("countersigned record") && $0.contains("re-sealed under another key") }, "\(report.problems)")

        // The forger binds their key with a commune key of their own and drops the countersignatures.
        let fakeCommune = DeviceKey(Curve25519.Signing.PrivateKey())
        let binding = try KeyBinding.make(device: "thaithuy-0042", deviceKey: forger.publicKeyBase64, boundAt: t0, key: fakeCommune)
        try (JSONEncoder().encode(binding)).write(to: URL(fileURLWithPath: proof + "/" + Bundle.bindingFile))
        try Data().write(to: URL(fileURLWithPath: proof + "/" + Bundle.countersignFile))
        let (forged, code) = bundles.verify(manifest)
        #expect(code == 1 && forged.problems.contains { $0.contains("bound by no commune key you trust") && $0.contains(fakeCommune.fingerprint) }, "\(forged.problems)")
        let (unanchored, three) = VerifyCommand.run(path: manifest)
        #expect(three == 3 && !unanchored.anchored, "\(unanchored.problems): with nothing to trust it is only consistent, never authentic")
    }

    @Test func anAlteredBindingIsCaught() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        let path = proof + "/" + Bundle.bindingFile
        var b = try JSONDecoder().decode(KeyBinding.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        b.boundAt = b.boundAt + 3600
        try JSONEncoder().encode(b).write(to: URL(fileURLWithPath: path))
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("signature verifies: it was altered") }, "\(report.problems)")
    }

    /// The manifest is signed; a missing signature, an edit after signing (the joined MP4's
    /// hash), an unknown file in the proof folder: each named.
    @Test func theManifestIsSignedAndItsEditsAreCaught() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        var m = try JSONDecoder().decode(EvidenceManifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifest)))
        m.request = "VV-2026-999"
        try JSONEncoder().encode(m).write(to: URL(fileURLWithPath: manifest))
        var (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems == ["the manifest's signature (manifest.sig) does not verify: the manifest was edited after it was signed"], "\(report.problems)")
        try FileManager.default.removeItem(atPath: proof + "/" + ManifestSeal.file)
        (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("the manifest is not signed") }, "\(report.problems)")

        let (manifest2, proof2, _) = try await bundles.bundle()
        try Data("x".utf8).write(to: URL(fileURLWithPath: proof2 + "/notes.txt"))
        (report, status) = bundles.verify(manifest2)
        #expect(status == 1 && report.problems.contains { $0.contains("notes.txt is not a file of the bundle format") }, "\(report.problems)")
    }

    /// CRLF endings on the manifest (a Windows tool) do not break its signature.
    @Test func aManifestWithCRLFEndingsStillVerifies() async throws {
        let (manifest, _, _) = try await bundles.bundle()
        let text = try String(contentsOfFile: manifest, encoding: .utf8)
        #expect(text.contains("\n"))
        try text.replacingOccurrences(of: "\n", with: "\r\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(bundles.verify(manifest).1 == 0)
    }

    /// Every field a person reads is the records' even when the manifest is signed again: the
    /// camera, and the gaps (one hidden, one invented).
    @Test func theCameraAndTheGapsAreCheckedAgainstTheRecords() async throws {
        let (manifest, _, key) = try await bundles.bundle()
        try bundles.reexport(manifest, key: key) { $0.camera = "cam9" }
        var (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("says camera cam9") }, "\(report.problems)")
        try bundles.reexport(manifest, key: key) { $0.camera = "cam1"; $0.gaps = [] }
        (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("the manifest's gaps do not say so") }, "\(report.problems)")
        try bundles.reexport(manifest, key: key) { $0.gaps = [.init(from: t0 + 12, to: t0 + 30, reason: "camera down"), .init(from: t0 + 2, to: t0 + 6, reason: "x")] }
        (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("holds sealed footage of it") }, "\(report.problems)")
    }

    /// A manifest the commune signed must be signed by a key the verifier trusts.
    @Test func aCommuneSignedManifestNeedsATrustedKey() async throws {
        let (manifest, proof, _) = try await bundles.bundle()
        try Bundle.signManifest(at: manifest, proof: proof, signer: .commune, key: bundles.commune)
        #expect(bundles.verify(manifest).1 == 0)
        let other = DeviceKey(Curve25519.Signing.PrivateKey())
        try Bundle.signManifest(at: manifest, proof: proof, signer: .commune, key: other)
        let (report, status) = bundles.verify(manifest)
        #expect(status == 1 && report.problems.contains { $0.contains("which you do not trust") }, "\(report.problems)")
    }

    @Test func trustFilesAndValuesAreReadStrictly() throws {
        let key = DeviceKey(Curve25519.Signing.PrivateKey())
        let file = NSTemporaryDirectory() + "trust-\(UUID().uuidString)"
        try "# commune Thái Thụy\n\n\(key.publicKeyBase64)\r\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try VerifyCommand.trustedKeys([file], trustFile: nil).map(\.rawRepresentation) == [key.publicKey.rawRepresentation])
        #expect(try VerifyCommand.trustedKeys([key.publicKeyBase64], trustFile: nil).count == 1)
        #expect(try VerifyCommand.trustedKeys([], trustFile: file).count == 1, "with no --commune-key the trust file is read")
        #expect(try VerifyCommand.trustedKeys([], trustFile: nil, also: [key.publicKeyBase64]).count == 1)
        #expect(throws: VerifyCommand.TrustError.self) { try VerifyCommand.trustedKeys(["not-a-key"], trustFile: nil) }
        try "\(key.publicKeyBase64)\ngarbage\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: VerifyCommand.TrustError.self) { try VerifyCommand.trustedKeys([file], trustFile: nil) }
    }
}
