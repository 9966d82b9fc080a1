import SystemCrypto
import Evidence
import Foundation
import Hostile
import Testing
import Wire
@testable import Commune
@testable import Config
import RTSP
@testable import Control
@testable import Desk
import Hummingbird
@testable import Ring
@testable import Update
@testable import Uplink

/// Fuzz targets for every parser that reads what crosses a trust boundary (issue 11): a
/// deterministic, bounded mutation harness run by `swift test` (no libFuzzer build is set up yet;
/// coverage guidance is the next step). Each target runs its committed seed corpus (Corpus/<target>/,
/// one input per file, or per line in *.txt: crashes found become seeds there), then mutations
/// of it from a fixed seed for FUZZ_SECONDS (default 2; `make fuzz` gives each 60) or
/// FUZZ_MAX_RUNS. A crash kills the runner, which fails; a target that hangs hits the time limit.
enum Fuzz {
    struct Target: Sendable, CustomTestStringConvertible {
        let name: String
        let run: @Sendable ([UInt8]) -> Void
        var testDescription: String { name }
    }

    static let now = Timestamp(rfc3339: "2026-11-29T15:30:00Z")!
    static let fuzzKey = DeviceKey(Curve25519.Signing.PrivateKey())
    static let scratch = NSTemporaryDirectory() + "junction-fuzz-\(getpid())"

    static func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    /// The box file the settings target lays fragments over.
    static let settingsBase = """
        [device]
        id = "fuzz-box"
        [camera]
        url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
        [storage]
        path = "/var/lib/junction"
        [server]
        url = "https://commune.example.vn"
        token = "t"
        """

    static let targets: [Target] = [
        Target(name: "toml") { b in
            _ = try? ConfigFile.decode(b, file: "f")
            _ = try? JunctionConfiguration.parse(text(b))
        },
        Target(name: "time") { b in
            _ = try? TimeExpression.parse(text(b), now: now, utcOffsetSeconds: 7 * 3600)
            _ = Timestamp(rfc3339: text(b))
        },
        Target(name: "httpdate") { b in
            _ = HTTPDate.parse(text(b))
            _ = TusUploadStateMachine.hasExpired(text(b))
        },
        Target(name: "metadata") { b in
            if let m = try? UploadMetadata(decoding: text(b)) { _ = try? UploadMetadata(decoding: m.encoded) }
        },
        Target(name: "weburl") { b in
            let s = text(b)
            _ = try? WebAddress(s, allowHTTP: true)
            _ = TusClient.refusedLocation(TusClient.resolve(s, against: "https://commune.test/files/"), collectionURL: "https://commune.test/files/")
            _ = JunctionConfiguration.Camera.redact(s)
            _ = TerminalText.safe(s)
            _ = PlainName.isValid(s)
        },
        Target(name: "tusheaders") { b in
            // A header line from the server, in each answer the state machine reads.
            let line = text(b)
            let parts = line.split(separator: ":", maxSplits: 1)
            let headers = parts.count == 2 ? [String(parts[0]): String(parts[1].drop { $0 == " " })] : ["Upload-Offset": line]
            var m = TusUploadStateMachine(length: 1_000_000, metadata: UploadMetadata([("a", "b")]))
            for status in [201, 200, 204, 409, 410, 460, 503, 301] {
                let action = m.next()
                if case .done = action { break }
                if case .failed = action { break }
                m.handle(action, .response(status: status, headers: headers, seconds: 0.1))
            }
        },
        // A heartbeat as the commune reads it, and on to what the desk draws of it (issue 22:
        // the crashes were behind the decoder, in the box list): every number it lets through is
        // inside `Bounds`, and drawing it cannot trap.
        Target(name: "heartbeat") { b in
            guard let r = try? Heartbeat.decode(Heartbeat.Report.self, from: b) else { return }
            _ = Heartbeat.problem(r)
            for q in r.requests.prefix(4) {
                let spans = Array(q.coverage.prefix(2000))
                _ = Coverage.paint(from: now + -86400, to: now, base: .pending, layers: spans)
                _ = Coverage.coarsened(spans, to: 10)
            }
            let h = r.health
            for v in [h.ringBytes, h.budgetBytes, h.freeBytes, h.pinnedBytes, h.pinnedCapBytes] { precondition(Bounds.bytes.contains(v)) }
            precondition(h.uploadBytesPerSecond.map(Bounds.bytesPerSecond.contains) ?? true)
            let status = BoxStatus(Catalog.Device(id: "b", lastSeen: h.sentAt, health: h, publicKey: nil), now: now)
            let local = LocalForm(timeZone: Desk.defaultTimeZone, language: .vi)
            _ = (status.severity, local.bytes(h.freeBytes), local.bytes(h.pinnedCapBytes), h.uploadBytesPerSecond.map(local.rate),
                 local.elapsed(now.seconds(since: h.sentAt)), h.oldest.map { local.dateTime($0) })
            if let a = r.activity { _ = a.decoded }
        },
        // The commune's answer as the box reads it: at most 100 requests, each a bounded range
        // a flag can take; chain_wanted inside 1…2^53; the pause it leads to is a sane one.
        // An update bundle's header and index (issue 24), and the fleet's heartbeat fields.
        Target(name: "update") { b in
            if let (m, _, _, headerBytes) = try? UpdateBundle.header(Array(b.prefix(UpdateBundle.headLimit)), size: Int64(b.count)) {
                precondition(m.rootfs.blocks <= UpdateBundle.maxBlocks && m.minimumVersion <= m.version)
                if let blocks = try? UpdateBundle.index(Array(b.dropFirst(Int(headerBytes)).prefix(m.rootfs.blocks * UpdateBundle.indexEntryBytes)),
                                                        manifest: m, headerBytes: headerBytes) {
                    precondition(blocks.allSatisfy { $0.stored <= m.rootfs.blockBytes })
                }
            }
            _ = ReleaseVersion(text(b))
            _ = try? Keyring(text: text(b))
            _ = BootEntries.parse(fileName: text(b))
            _ = BootEntries.bootedSlot(cmdline: text(b))
            _ = Rollout.parseWaves(text(b))
            if let r = try? Heartbeat.decode(FleetUpdate.Report.self, from: b) {
                precondition(r.slots.count <= 2 && r.failed.count <= FleetUpdate.maxFailed)
            }
            if let o = try? Heartbeat.decode(FleetUpdate.Offer.self, from: b) {
                precondition(o.path.hasPrefix(FleetUpdate.releasePath) && !o.path.contains("..") && o.bytes > 0)
            }
        },
        // Settings from the commune (issue 24, item 7): the offer and the report as the heartbeat
        // decodes them, the fragment laid over a box's file, and root's state file.
        Target(name: "settings") { b in
            if let o = try? Heartbeat.decode(RemoteSettings.Offer.self, from: b) {
                precondition(RemoteSettings.revisions.contains(o.revision) && o.toml.utf8.count <= RemoteSettings.maxTOMLBytes)
            }
            _ = try? Heartbeat.decode(RemoteSettings.Report.self, from: b)
            let overlay = SettingsOverlay(revision: 1, text: text(b))
            if let c = try? JunctionConfiguration.parse(settingsBase, file: "junction.toml", overlay: overlay) {
                // Whatever the fragment says, the installer's keys stay the installer's.
                precondition(c.device.id == "fuzz-box" && c.storage.path == "/var/lib/junction" && c.server?.url == "https://commune.example.vn")
                precondition(c.camera.id == "cam1")
            }
            if var state = try? JSONDecoder().decode(SettingsState.self, from: Data(b)) {
                _ = state.overlay(baseSHA256: "00", bootID: "b")
                _ = state.settle(baseSHA256: "00", bootID: "b", now: now)
                precondition(state.trial == nil || state.trial?.bootID == "b")
            }
        },
        // A time zone file (issue 25: the box reads /usr/share/zoneinfo itself) and a TZ rule:
        // whatever the bytes, every offset is a local time (within ±26 h) at every instant.
        Target(name: "tzif") { b in
            let instants: [Int64] = [.min, .max, 0, -1, 1 << 40, -(1 << 40), 1_796_000_000, -2_208_988_800]
            if let z = try? TZif.parse(b) {
                for t in instants + z.transitions.prefix(8).flatMap({ [$0 - 1, $0] }) {
                    precondition(abs(z.offset(atUTC: t)) <= 26 * 3600)
                }
            }
            if let rule = try? PosixTZ.parse(text(b)) {
                for t in instants { precondition(abs(rule.offset(atUTC: t)) <= 26 * 3600) }
            }
        },
        // What a camera sends over RTSP/TCP (issue 25): the interleaved stream fed in pieces, each
        // frame read as RTP and pushed through the H.264 depacketizer, any answer's body read as
        // SDP. Whatever the bytes: bounded buffers, bounded access units, no trap.
        Target(name: "rtsp") { b in
            var reader = InterleavedReader()
            var h264 = VideoDepacketizer()
            var h265 = VideoDepacketizer(codec: .h265)
            var aac = try! AACDepacketizer(parameters: ["mode": "AAC-hbr", "sizelength": "13", "indexlength": "3", "indexdeltalength": "3", "config": "1588"])
            var items = 0
            for piece in stride(from: 0, to: b.count, by: 97).map({ b[$0..<min($0 + 97, b.count)] }) {
                guard (try? reader.feed(piece)) != nil else { return }
                while let item = try? reader.next(), items < 10_000 {
                    items += 1
                    switch item {
                    case .frame(_, let payload):
                        if let p = try? RTPPacket(payload) {
                            for f in aac.push(p) { precondition(f.data.count <= AACDepacketizer.maxFrameBytes) }
                            for au in h264.push(p) + h265.push(p) {
                                precondition(au.nalUnits.count <= VideoDepacketizer.maxNALUnits)
                                precondition(au.nalUnits.reduce(0) { $0 + $1.count } <= VideoDepacketizer.maxAccessUnitBytes)
                            }
                        }
                    case .response(let r):
                        precondition(r.body.count <= RTSPResponse.maxBodyBytes && r.headers.count <= RTSPResponse.maxHeaders)
                        if let s = try? SessionDescription(r.body) { precondition(s.media.count <= SessionDescription.maxMedia); _ = s.media.map(\.h264ParameterSets) }
                    }
                }
            }
            _ = try? SessionDescription(b)
            _ = try? RTCPSenderReport.find(in: b)
            if let p = try? RTPPacket(b) { _ = h264.push(p) }
        },
        Target(name: "reply") { b in
            guard let reply = try? Heartbeat.decode(Heartbeat.Reply.self, from: b) else { return }
            precondition(reply.requests.count <= Heartbeat.Limits.maxRequests)
            for q in reply.requests {
                precondition(q.to > q.from && PlainName.isValid(q.id))
                _ = try? Ring.validate(.init(camera: q.camera ?? "cam1", from: q.from, to: q.to, reason: q.reason))
            }
            if let w = reply.chainWanted { precondition(w.through > w.after && Bounds.sequence.contains(w.through)) }
            var known = HeartbeatService.Known()
            known.chainProgressed = reply.chainWanted != nil
            let pause = known.pause(after: .answered(newRequests: reply.requests.count), interval: .seconds(60), retry: .seconds(2))
            precondition(pause >= .milliseconds(200) && pause <= .seconds(60))
        },
        // The desk's forms as a browser (or anyone) posts them, and the text in them read as
        // dates, ranges and client addresses.
        Target(name: "form") { b in
            let body = text(b)
            let decoder = URLEncodedFormDecoder()
            _ = try? decoder.decode(Desk.SignInForm.self, from: body)
            _ = try? decoder.decode(Desk.PasswordForm.self, from: body)
            _ = try? decoder.decode(Desk.RequestForm.self, from: body)
            _ = try? decoder.decode(Desk.NarrowForm.self, from: body)
            if let f = try? decoder.decode(Desk.BoxEvidenceForm.self, from: body),
               let from = Timestamp(validMilliseconds: f.from_ms), let to = Timestamp(validMilliseconds: f.to_ms) {
                _ = to.seconds(since: from)
            }
            let local = LocalForm(timeZone: Desk.defaultTimeZone, language: .vi)
            for part in body.split(separator: "&").prefix(8) {
                let value = String(part.split(separator: "=", maxSplits: 1).last ?? "")
                if let t = local.parse(value) { precondition(Timestamp.validRange.contains(t)); _ = local.dateTime(t, seconds: true) }
                if case .range(let r) = Desk.byteRange(value, size: 1000) { precondition(r.lowerBound >= 0 && r.upperBound < 1000) }
                _ = Desk.clientAddress(peer: "127.0.0.1", forwardedFor: [value], trusted: ["127.0.0.1"])
                _ = Desk.usablePassword(value)
            }
        },
        Target(name: "control") { b in
            guard let r = try? JSONDecoder().decode(Control.Request.self, from: Data(b)) else { return }
            if let from = r.from, let to = r.to {
                _ = try? Ring.validate(.init(camera: r.camera ?? "", from: from, to: to, reason: r.reason,
                                             preRollSeconds: r.preRollSeconds ?? 0, postRollSeconds: r.postRollSeconds ?? 0))
            }
        },
        // Evidence (issue 13): records and seals from a box, a card or a bundle.
        Target(name: "chain") { b in
            let lines = text(b).split(separator: "\n").prefix(64).map(String.init)
            let sealed = lines.compactMap { try? JSONDecoder().decode(SealedRecord.self, from: Data($0.utf8)) }
            for l in lines { _ = try? ChainRecord.parse(l) }
            _ = ChainVerifier.verify(sealed + [SealedRecord(body: text(b), signature: text(b))], key: fuzzKey.publicKey, device: "d")
        },
        // A damaged clip against its genuine record (issue 22): the cut that resynchronises on
        // the next moof, the pieces found among the sealed ones, the lost seconds.
        Target(name: "fragments") { b in
            let path = scratch + "-\(UInt64.random(in: 0...UInt64.max)).frag"
            FileManager.default.createFile(atPath: path, contents: Data(b))
            defer { unlink(path) }
            _ = FragmentMap.damage(path: path, record: fragmentRecord)
            _ = ChainVerifier.verifyFile(path: path, record: fragmentRecord)
        },
        Target(name: "sealbox") { b in
            _ = SealBox.decode(b)
            let path = scratch + "-\(UInt64.random(in: 0...UInt64.max)).seal"
            FileManager.default.createFile(atPath: path, contents: Data(b))
            defer { unlink(path) }
            _ = ClipProof.examine(path: path, device: "d", enrolledKey: fuzzKey.publicKeyBase64, namedSeq: 1)
            var h = PieceHasher()
            h.update(b)
            _ = h.finish()
        },
        Target(name: "countersign") { b in
            for line in text(b).split(separator: "\n").prefix(16) {
                guard let c = try? JSONDecoder().decode(Heartbeat.Countersign.self, from: Data(line.utf8)) else { continue }
                _ = c.isValid()
                _ = c.isValid(trusting: fuzzKey.publicKey)
            }
            _ = DeviceKey.publicKey(base64: text(b))
        },
        Target(name: "mp4") { b in
            let path = scratch + "-\(UInt64.random(in: 0...UInt64.max)).seg"
            FileManager.default.createFile(atPath: path, contents: Data(b))
            defer { unlink(path) }
            if let scan = try? MP4Scanner.scan(path: path), let c = scan.comment { _ = SegmentOrigin(comment: c) }
        },
        // A bundle a stranger hands the verifier: the input's first line is the manifest, lines
        // starting "C " countersignatures, "B " the key binding, "S " the manifest's signature,
        // the rest the chain; it is verified as a folder on disk, trusting the fuzz key.
        Target(name: "bundle") { b in
            let lines = text(b).split(separator: "\n", omittingEmptySubsequences: false).prefix(256)
            guard let first = lines.first else { return }
            let dir = scratch + "-bundle-\(UInt64.random(in: 0...UInt64.max))"
            try? FileManager.default.createDirectory(atPath: dir + "/p/segments", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let rest = lines.dropFirst()
            FileManager.default.createFile(atPath: dir + "/m.manifest.json", contents: Data(first.utf8))
            FileManager.default.createFile(atPath: dir + "/p/" + Bundle.keyFile, contents: Data((fuzzKey.publicKeyBase64 + "\n").utf8))
            FileManager.default.createFile(atPath: dir + "/p/" + Bundle.chainFile,
                                           contents: Data(rest.filter { !$0.hasPrefix("C ") && !$0.hasPrefix("B ") && !$0.hasPrefix("S ") }.joined(separator: "\n").utf8))
            for (prefix, file) in [("B ", Bundle.bindingFile), ("S ", ManifestSeal.file)] {
                if let line = rest.first(where: { $0.hasPrefix(prefix) }) { FileManager.default.createFile(atPath: dir + "/p/" + file, contents: Data(line.dropFirst(2).utf8)) }
            }
            FileManager.default.createFile(atPath: dir + "/p/" + Bundle.countersignFile,
                                           contents: Data(rest.filter { $0.hasPrefix("C ") }.map { $0.dropFirst(2) }.joined(separator: "\n").utf8))
            let report = BundleVerifier.verify(manifest: dir + "/m.manifest.json", trusting: [fuzzKey.publicKey])
            precondition(report.problems.count <= BundleVerifier.maxProblems + 1)
            precondition(report.verdict == .unreadable || report.verdict.exitStatus != 3, "a trusted key was given: never merely consistent")
            _ = BundleVerifier.render(report)
            _ = VerifyCommand.json(report)
        },
        Target(name: "preview") { b in
            // A preview as the commune reads it, whole and while it arrives: every picture it
            // names lies inside the bytes, within the bounds, and starts and ends as a JPEG.
            for whole in [true, false] {
                let scan = PreviewSheet.scan(b, whole: whole)
                precondition(scan.entries.count <= PreviewSheet.Limits.maxPictures && scan.consumed <= b.count)
                for e in scan.entries {
                    precondition(e.offset + e.length <= b.count && e.length <= PreviewSheet.Limits.maxPictureBytes)
                    precondition(b[e.offset] == 0xFF && b[e.offset + e.length - 1] == 0xD9)
                }
            }
        },
    ]

    /// The genuine record of `FragmentedMP4.segment(fragments: 10)`, which the `fragments`
    /// target's inputs are damaged copies of.
    static let fragmentRecord: ChainRecord = {
        var h = PieceHasher()
        h.update(FragmentedMP4.segment(fragments: 10).bytes)
        let (sha, pieces) = h.finish()
        return ChainRecord(device: "d", seq: 1, prev: ChainRecord.genesis, kind: .segment, camera: "c", start: Timestamp(milliseconds: 0),
                           end: Timestamp(milliseconds: 10_000), clockSynchronized: true, file: "a.mp4",
                           mediaBytes: Int64(FragmentedMP4.segment(fragments: 10).bytes.count), mediaSHA256: sha, pieces: pieces)
    }()

    /// The `fragments` target's seeds are made, not committed, so they always match the record:
    /// the intact segment, one with rot in fragment 3's media and fragment 7's moof header
    /// zeroed, one cut inside fragment 8, one with its header zeroed.
    static let fragmentSeeds: [[UInt8]] = {
        let (intact, starts) = FragmentedMP4.segment(fragments: 10)
        var rotten = intact
        rotten[starts[3] + 500] ^= 0xFF
        for i in 0..<4 { rotten[starts[7] + i] = 0 }
        var headless = intact
        for i in 0..<starts[1] { headless[i] = 0 }
        return [intact, rotten, Array(intact.prefix(starts[8] + 10)), headless]
    }()

    static let corpusRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        return url.path + "/Corpus"
    }()

    static func seeds(_ name: String) -> [[UInt8]] {
        if name == "fragments" { return fragmentSeeds }
        let dir = corpusRoot + "/" + name
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        var out: [[UInt8]] = []
        for f in files {
            guard let d = FileManager.default.contents(atPath: dir + "/" + f) else { continue }
            if f.hasSuffix(".txt") {
                out += d.split(separator: 0x0a).map { Array($0) }
            } else {
                out.append(Array(d))
            }
        }
        return out.isEmpty ? [[]] : out
    }

    /// xorshift64*: the same mutations every run for the same seed.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    }

    static let interesting: [[UInt8]] = [
        [0], [0xff], [0x7f], [0x80], Array("[".utf8), Array("]".utf8), Array("\"".utf8), Array("\n".utf8), Array("\r\n".utf8),
        Array("99999999999999999999".utf8), Array("-1e300".utf8), Array("inf".utf8), Array("nan".utf8), Array("@".utf8),
        Array("://".utf8), Array("..".utf8), Array("\u{1b}[2J".utf8), [0xff, 0xff, 0xff, 0xff], [0, 0, 0, 1], [0x7f, 0xff, 0xff, 0xff],
        Array(",".utf8), Array("{".utf8), Array("}".utf8), Array(":".utf8), Array("%".utf8), [0xc3], [0xed, 0xa0, 0x80],
        // Issue 22: the numbers that met trapping arithmetic behind the decoders.
        Array("-9223372036854775808".utf8), Array("9223372036854775807".utf8), Array("9223372036854775808".utf8), Array("1e300".utf8),
        Array("1e-300".utf8), Array("-0".utf8), Array("9007199254740993".utf8), Array("4.9e-324".utf8), Array("½".utf8), Array("٣".utf8),
    ]

    static func mutate(_ input: [UInt8], _ r: inout Random, corpus: [[UInt8]]) -> [UInt8] {
        var b = input
        for _ in 0...r.below(4) {
            switch r.below(8) {
            case 0 where !b.isEmpty: b[r.below(b.count)] ^= UInt8(1 << r.below(8))
            case 1 where !b.isEmpty: b[r.below(b.count)] = UInt8(truncatingIfNeeded: r.next())
            case 2: b.insert(contentsOf: interesting[r.below(interesting.count)], at: r.below(b.count + 1))
            case 3 where !b.isEmpty:
                let i = r.below(b.count); b.removeSubrange(i..<min(b.count, i + 1 + r.below(16)))
            case 4 where !b.isEmpty:  // repeat a chunk many times (nesting, long lines)
                let i = r.below(b.count), n = 1 + r.below(min(8, b.count - i))
                let chunk = Array(b[i..<i + n])
                b.insert(contentsOf: Array([[UInt8]](repeating: chunk, count: 1 + r.below(2000)).joined()), at: i)
            case 5:  // splice another seed
                let other = corpus[r.below(corpus.count)]
                if !other.isEmpty { let i = r.below(other.count); b += other[i...] }
            case 6 where b.count >= 8:  // a big-endian size field set to an extreme
                let i = r.below(b.count - 4)
                let v: [UInt8] = [[0xff, 0xff, 0xff, 0xff], [0, 0, 0, 1], [0, 0, 0, 0], [0x7f, 0xff, 0xff, 0xff]][r.below(4)]
                b.replaceSubrange(i..<i + 4, with: v)
            default:
                if !b.isEmpty { b.removeLast(r.below(b.count)) }
            }
        }
        return b.count > 1 << 20 ? Array(b.prefix(1 << 20)) : b
    }

    static var seconds: Double { Double(ProcessInfo.processInfo.environment["FUZZ_SECONDS"] ?? "") ?? 2 }
    static var maxRuns: Int { Int(ProcessInfo.processInfo.environment["FUZZ_MAX_RUNS"] ?? "") ?? 1_000_000 }
}

@Suite(.timeLimit(.minutes(10)))
struct FuzzTests {
    @Test(arguments: Fuzz.targets)
    func target(_ t: Fuzz.Target) {
        let corpus = Fuzz.seeds(t.name)
        for seed in corpus { t.run(seed) }
        var r = Fuzz.Random(state: 0x9E37_79B9_7F4A_7C15 ^ UInt64(t.name.utf8.reduce(0) { $0 &* 31 &+ Int($1) } & 0x7fff_ffff))
        let deadline = Date().addingTimeInterval(Fuzz.seconds)
        var runs = 0
        while runs < Fuzz.maxRuns && Date() < deadline {
            t.run(Fuzz.mutate(corpus[r.below(corpus.count)], &r, corpus: corpus))
            runs += 1
        }
        print("fuzz \(t.name): \(corpus.count) seeds, \(runs) mutated inputs in \(Fuzz.seconds) s, no crash")
        #expect(runs > 0 || Fuzz.maxRuns == 0)
    }
}
