import Foundation
import Testing

/// Issue 13 end to end with the real binaries: a box records, is killed -9 twice and has its
/// camera pulled once; an officer asks for the whole stretch; every clip is filed verified at
/// the commune, and the offline verifier finds the export authentic and complete except exactly
/// the gaps the box recorded, countersigned by the commune.
@Suite(.serialized, .timeLimit(.minutes(6)))
struct EvidenceChainTests {
    @Test func killedTwiceCameraPulledOnceAndStillProvablyComplete() throws {
        let commune = try UplinkFaultTests.Commune()
        let camera = Camera(clip: try Rig.clip())
        try camera.start()
        defer { camera.stop() }
        let (daemon, config) = try UplinkFaultTests().recordingBox(camera: camera, serverURL: "http://127.0.0.1:\(commune.port)",
                                                                   token: commune.token)
        func segments() -> Int { ((try? listSegments(config)) ?? []).count }
        func recordMore(_ n: Int) {
            let target = segments() + n
            #expect(Rig.wait(seconds: 40) { segments() >= target }, "\(daemon.output.suffix(2000))")
        }
        try daemon.start()
        defer { daemon.stop() }
        recordMore(3)
        daemon.stop(signal: SIGKILL)                      // a crash, mid-segment
        try daemon.start()
        recordMore(2)
        camera.stop()                                     // the camera's cable pulled for ~6 s
        Thread.sleep(forTimeInterval: 6)
        try camera.start()
        recordMore(3)
        daemon.stop(signal: SIGKILL)                      // and a second crash
        try daemon.start()
        recordMore(3)

        // The officer asks for all of it; the box takes it at a heartbeat and uploads it.
        let listed = try listSegments(config)
        let from = listed.first!.start, to = listed.last!.end
        let ask = try Rig.run(UplinkFaultTests.commune, ["request", "--data", commune.data, "--device", "it-box", "--from", from,
                                                         "--to", to, "--reason", "VV-2026-131", "--json"])
        try #require(ask.status == 0, "\(ask.stderr)")
        #expect(Rig.wait(seconds: 120) { commune.requests().first?["state"] as? String == "complete" },
                "\(commune.requests()) \(daemon.output.suffix(2000))")
        // One more heartbeat after the range: the commune countersigns a head past its end.
        Thread.sleep(forTimeInterval: 6)
        daemon.stop()

        let inRange = try listSegments(config).filter { parseTime($0.end) > parseTime(from) && parseTime($0.start) < parseTime(to) }
        let clips = commune.clips()
        #expect(clips.count == inRange.count && clips.allSatisfy { $0["proof"] as? String == "verified" },
                "\(clips.map { ($0["proof"] ?? "", $0["proof_detail"] ?? "") })")

        // Offline: the box's export of the range.
        let out = Rig.tempDir("usb")
        let export = try Rig.junction(["export", "--config", config, "--from", from, "--to", to, "-o", out])
        #expect(export.status == 0 && export.stdout.contains("Proof:"), "\(export.stdout)\(export.stderr)")
        // Checked as a stranger would, with only the commune's published key (issue 23).
        let key = try Rig.run(UplinkFaultTests.commune, ["key", "--data", commune.data, "--json"])
        let published = (try JSONSerialization.jsonObject(with: Data(key.stdout.utf8)) as? [String: String])?["public_key"] ?? ""
        let written = try String(contentsOfFile: commune.data + "/commune-key.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.status == 0 && published == written,
                "commune key prints the key it publishes: \(key.stdout)\(key.stderr)")
        let verify = try Rig.junction(["verify", "--commune-key", published, out, "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(verify.status == 0 && report["authentic"] as? Bool == true && report["complete"] as? Bool == true,
                "\(verify.stdout)\(verify.stderr)")
        #expect(report["verified_segments"] as? Int == inRange.count)
        #expect((report["undeclared"] as? [Any])?.isEmpty == true, "every second is a segment or a declared gap")
        #expect((report["time"] as? [String: Any])?["countersigned_at"] != nil, "the commune countersigned a head past the range")
        #expect(report["anchored"] as? Bool == true && (report["relied_on"] as? [String] ?? []).contains { $0.contains("bound to it-box") },
                "the box's export carries the commune's binding of its key: \(verify.stdout)")
        // Without a key to trust: consistent, never "authentic" (3); with another commune's: not authentic (1).
        let alone = try Rig.junction(["verify", out])
        #expect(alone.status == 3 && alone.stdout.contains("CONSISTENT, BUT NOT PROVEN AUTHENTIC") && alone.stdout.contains("relied on"), "\(alone.stdout)")
        // The public key of the Ed25519 seed 00 01 … 1f: some other commune's.
        let stranger = try Rig.junction(["verify", "--commune-key", "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", out])
        #expect(stranger.status == 1 && stranger.stdout.contains("bound by no commune key you trust"), "\(stranger.stdout)")

        // Exactly the gaps the box recorded: two for the crashes, one for the camera.
        let declared = (report["declared_gaps"] as? [[String: Any]] ?? []).map { ($0["from"] as? String ?? "", $0["to"] as? String ?? "", $0["reason"] as? String ?? "") }
        let status = try statusJSON(config)
        let recorded = (status["gaps_last_24h"] as? [[String: Any]] ?? [])
            .map { ($0["start"] as? String ?? "", $0["end"] as? String ?? "", $0["reason"] as? String ?? "") }
            .filter { parseTime($0.1) > parseTime(from) && parseTime($0.0) < parseTime(to) }
        #expect(declared.count == recorded.count && zip(declared, recorded).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 },
                "declared \(declared) recorded \(recorded)")
        #expect(declared.filter { $0.2.contains("recorder was not running") }.count == 2 && declared.count == 3, "\(declared)")

        // And the same bundle with one byte changed is caught, naming the file.
        let proof = try FileManager.default.contentsOfDirectory(atPath: out).first { $0.hasSuffix(".proof") }!
        let files = try FileManager.default.contentsOfDirectory(atPath: out + "/" + proof + "/segments").sorted()
        let victim = out + "/" + proof + "/segments/" + files[files.count / 2]
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: victim)))
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        let tampered = try Rig.junction(["verify", "--commune-key", published, out])
        #expect(tampered.status == 1 && tampered.stdout.contains("NOT AUTHENTIC") && tampered.stdout.contains(files[files.count / 2]),
                "\(tampered.stdout)")
    }
}
