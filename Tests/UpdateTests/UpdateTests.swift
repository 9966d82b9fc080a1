import SystemCrypto
import Foundation
import Testing
import Wire
@testable import Update

@Suite struct ReleaseVersionTests {
    @Test func versionsCompareByNumbers() {
        let v = { (s: String) in ReleaseVersion(s)! }
        #expect(v("1.10.0") > v("1.9.9"))
        #expect(v("1.4") == v("1.4.0") && v("1.4.2-rc1") == v("1.4.2"))
        #expect(v("2") > v("1.999999.999999.999999"))
        #expect(v("1.4.2-rc1").description == "1.4.2-rc1")
    }

    @Test func versionsOutsideTheirBoundsAreRefused() {
        for bad in ["", "1..2", "1.2.3.4.5", "1234567", "v1.2", "1.2-", "1.2-rc 1", "-1", "1.2-" + String(repeating: "x", count: 33), "１.2"] {
            #expect(ReleaseVersion(bad) == nil, "\(bad)")
        }
        #expect(ReleaseVersion("999999.999999.999999.999999") != nil, "four components of six digits: the bound")
        #expect(ReleaseVersion("1.2-" + String(repeating: "x", count: 32)) != nil, "a 32-character label: the bound")
    }
}

@Suite struct UpdateBundleTests {
    @Test func aBundleRoundTripsAndSaysWhoSignedIt() async throws {
        let r = try Release.make()
        let b = try await r.open()
        #expect(b.manifest.version == ReleaseVersion("1.1.0") && b.manifest.arch == "amd64")
        #expect(b.signedBy == Keyring.fingerprint(r.key.key.publicKey))
        #expect(b.blocks.count == 64 && b.blocks.filter(\.zero).count == 13)
        #expect(b.totalBytes == Int64(r.bytes.count))
        #expect(b.manifest.boot.map(\.name) == ["vmlinuz", "initrd.img"])
    }

    @Test func aBundleSignedByAnotherKeyIsUntrusted() async throws {
        let r = try Release.make()
        let other = ReleaseKey(try Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 0x42, count: 32)))
        await #expect { _ = try await r.open(keyring: Keyring(keys: [other.key.publicKey])) } throws: { ($0 as? UpdateError)?.kind == "untrusted" }
        await #expect { _ = try await r.open(keyring: Keyring(keys: [])) } throws: { ($0 as? UpdateError)?.kind == "untrusted" }
    }

    /// Re-signing: the manifest edited (a new hash for a changed image) and signed by another key.
    @Test func anEditedManifestBreaksTheSignature() async throws {
        let r = try Release.make()
        var b = r.bytes
        let text = String(decoding: b, as: UTF8.self)
        let i = try #require(text.range(of: "\"arch\":\"amd64\""))
        let at = text.utf8.distance(from: text.startIndex, to: i.lowerBound) + 8
        b.replaceSubrange(at..<at + 5, with: Array("arm64".utf8))
        await #expect {
            _ = try await UpdateBundle.open(size: Int64(b.count), keyring: r.keyring) { o, n in Release.slice(b, o, n) }
        } throws: { ($0 as? UpdateError)?.kind == "untrusted" }
    }

    @Test func truncatedAndOverlongBundlesAreRefused() async throws {
        let r = try Release.make()
        let b = r.bytes
        for cut in [0, 10, 200, b.count / 2, b.count - 1] {
            let short = Array(b.prefix(cut))
            await #expect {
                _ = try await UpdateBundle.open(size: Int64(short.count), keyring: r.keyring) { o, n in Release.slice(short, o, n) }
            } throws: { e in
                let k = (e as? UpdateError)?.kind
                return cut == 0 ? k == "malformed" : k == "truncated" || (cut == 10 && k == "malformed")
            }
        }
        let long = b + [0]
        await #expect {
            _ = try await UpdateBundle.open(size: Int64(long.count), keyring: r.keyring) { o, n in Release.slice(long, o, n) }
        } throws: { ($0 as? UpdateError)?.kind == "malformed" }
    }

    @Test func aDamagedIndexIsCaughtBeforeAnyBlockIsRead() async throws {
        let r = try Release.make()
        let good = try await r.open()
        var b = r.bytes
        b[Int(good.indexOffset) + 3] ^= 1
        await #expect {
            _ = try await UpdateBundle.open(size: Int64(b.count), keyring: r.keyring) { o, n in Release.slice(b, o, n) }
        } throws: { ($0 as? UpdateError)?.kind == "damaged" }
    }

    /// Every bound of the manifest, at the bound and one past it.
    @Test func manifestBoundsAreCheckedAtTheBound() throws {
        let base = UpdateBundle.Manifest(version: ReleaseVersion("1.0")!, arch: "arm64", minimumVersion: ReleaseVersion("1.0")!, created: "2026-12-04T00:00:00Z",
                                         notes: String(repeating: "n", count: UpdateBundle.maxNotes),
                                         rootfs: .init(bytes: UpdateBundle.maxRootfsBytes, blockBytes: 1 << 20, sha256: String(repeating: "a", count: 64),
                                                       indexSha256: String(repeating: "b", count: 64), dataBytes: 0),
                                         boot: [.init(name: "vmlinuz", bytes: UpdateBundle.maxBootFileBytes, sha256: String(repeating: "c", count: 64)),
                                                .init(name: "initrd.img", bytes: 1, sha256: String(repeating: "d", count: 64))])
        try UpdateBundle.check(base)
        var m = base; m.notes = String(repeating: "n", count: UpdateBundle.maxNotes + 1)
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.rootfs.bytes = UpdateBundle.maxRootfsBytes + 1
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.rootfs.blockBytes = (1 << 20) + 1
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.rootfs.blockBytes = 4096; m.rootfs.bytes = Int64(UpdateBundle.maxBlocks) * 4096
        try UpdateBundle.check(m)
        m.rootfs.bytes += 1
        #expect(throws: UpdateError.self, "one block past maxBlocks") { try UpdateBundle.check(m) }
        m = base; m.rootfs.blockBytes = 2048
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.boot[0].bytes = UpdateBundle.maxBootFileBytes + 1
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.boot.swapAt(0, 1)
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.minimumVersion = ReleaseVersion("1.0.1")!
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.arch = "riscv64"
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.rootfs.sha256 = String(repeating: "A", count: 64)
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
        m = base; m.format = 2
        #expect(throws: UpdateError.self) { try UpdateBundle.check(m) }
    }
}

@Suite struct SlotWriterTests {
    @Test func onlyWhatNeitherSlotHoldsIsFetched() async throws {
        // The running slot holds release 1.0.0; 1.1.0 changes 6 of its 64 blocks.
        let v1 = try Release.make(version: "1.0.0")
        var image = v1.rootfs
        var rg = SeededBytes(seed: 99)
        for block in [3, 4, 17, 41, 42, 63] { image.replaceSubrange(block * 4096..<(block + 1) * 4096, with: rg.next(4096)) }
        let v2 = try Release.make(version: "1.1.0", rootfs: image, in: v1.dir, name: "v2")
        let card = try Card.make(running: v1.rootfs)
        let served = Served(v2.bytes)
        let bundle = try await v2.open()
        let report = try await SlotWriter.write(bundle, fetch: served.fetch, target: card.dir + "/slot-b", current: card.dir + "/slot-a")
        #expect(card.slot("b") == image, "the slot is the release, byte for byte")
        #expect(report.fetched == 6 && report.zero + report.kept == 13 && report.copied == 45, "\(report)")
        #expect(report.requests == 4, "adjacent blocks ride one request: \(report)")
        let changed = bundle.blocks.enumerated().filter { [3, 4, 17, 41, 42, 63].contains($0.offset) }.reduce(0) { $0 + $1.element.stored }
        #expect(report.fetchedBytes == Int64(changed))
        #expect(card.slot("a") == v1.rootfs, "the running slot is never written")
    }

    /// A power cut at any block: the next try keeps what was written and fetches only the rest.
    @Test func aCutOffWriteGoesOnFromWhereItWas() async throws {
        let r = try Release.make(blocks: 48)
        let bundle = try await r.open()
        for cut in [12, 20, 30, 47] {  // the first zero blocks are already there (a fresh file reads as zeros)
            let card = try Card.make(running: [UInt8](repeating: 1, count: 4096))
            let served = Served(r.bytes)
            struct PowerCut: Error {}
            await #expect(throws: PowerCut.self) {
                _ = try await SlotWriter.write(bundle, fetch: served.fetch, target: card.dir + "/slot-b", current: card.dir + "/slot-a",
                                               maxRequestBytes: 4096, checkpoint: { if $0 == cut { throw PowerCut() } })
            }
            let first = served.fetched
            let report = try await SlotWriter.write(bundle, fetch: served.fetch, target: card.dir + "/slot-b", current: card.dir + "/slot-a")
            #expect(card.slot("b") == r.rootfs)
            #expect(report.kept >= cut, "cut at \(cut): \(report)")
            let stored = bundle.blocks.reduce(0) { $0 + $1.stored }
            #expect(served.fetched <= stored + 4096, "cut at \(cut): \(first) + \(served.fetched - first) fetched of \(stored): nothing fetched twice beyond one block")
        }
    }

    @Test func aDamagedBlockIsNeverWritten() async throws {
        let r = try Release.make(blocks: 16)
        let bundle = try await r.open()
        let card = try Card.make(running: [UInt8](repeating: 1, count: 4096))
        let served = Served(r.bytes)
        let victim = try #require(bundle.blocks.firstIndex { !$0.zero && $0.offset > bundle.blocks[1].offset })
        served.corruptAt = bundle.blocks[victim].offset + 5
        await #expect {
            _ = try await SlotWriter.write(bundle, fetch: served.fetch, target: card.dir + "/slot-b", current: nil, maxRequestBytes: 4096)
        } throws: { ($0 as? UpdateError)?.kind == "damaged" }
        let slot = card.slot("b")
        #expect(Array(slot[victim * 4096..<(victim + 1) * 4096]) != Array(r.rootfs[victim * 4096..<(victim + 1) * 4096]))
        #expect(!slot[victim * 4096..<(victim + 1) * 4096].allSatisfy { $0 == 0 } || r.rootfs[victim * 4096] != 0)
    }
}

@Suite struct InstallerTests {
    /// The whole trip on a card of files: install 1.1.0 into slot b while running a, reboot (b
    /// tried), bless; the state says so at each step and the floor rises.
    @Test func installBootBlessAndTheFloorRises() async throws {
        let r = try Release.make(version: "1.1.0", minimum: "1.0.5")
        let card = try Card.make(running: r.rootfs)
        let bundle = try await r.open()
        let report = try await Installer.install(bundle, fetch: Served(r.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath)
        #expect(report.slot == "b" && report.writer.fetched == 0, "every block came from the running slot: \(report.writer)")
        #expect(card.slot("b") == r.rootfs)
        #expect(try String(contentsOfFile: card.esp + "/junction/b/vmlinuz", encoding: .utf8) == "kernel 1.1.0")
        let entry = try #require(BootEntries(esp: card.esp).entry(slot: "b"))
        #expect(entry.triesLeft == 3 && entry.generation == 2 && entry.release == "1.1.0")
        #expect(entry.options == "root=PARTUUID=0000abcd-03 ro quiet junction.slot=b")
        #expect(try Installer.settle(box: card.box(), layout: card.layout, statePath: card.statePath) == .waitingForReboot(ReleaseVersion("1.1.0")!, slot: "b"))
        #expect(try card.boot() == "b")
        let onB = card.box(version: "1.1.0", slot: "b", bootID: "boot-2")
        #expect(try Installer.settle(box: onB, layout: card.layout, statePath: card.statePath) == .onTrial(ReleaseVersion("1.1.0")!))
        try card.bless("b")
        #expect(try Installer.settle(box: onB, layout: card.layout, statePath: card.statePath) == .blessed(ReleaseVersion("1.1.0")!))
        let state = UpdateState.load(path: card.statePath)
        #expect(state.minimum == ReleaseVersion("1.0.5") && state.last?.result == .blessed && state.attempt == nil)
        // Power cuts on the blessed slot never count.
        for _ in 0..<10 { #expect(try card.boot() == "b") }
        #expect(BootEntries(esp: card.esp).entry(slot: "b")?.isBlessed == true)
    }

    /// A release that never passes its health check: three tries, then the old slot, by itself;
    /// the version is failed and not tried again unless told.
    @Test func aBadReleaseRollsBackWithinItsTries() async throws {
        let r = try Release.make(version: "1.2.0")
        let card = try Card.make(running: r.rootfs)
        _ = try await Installer.install(try await r.open(), fetch: Served(r.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath)
        var booted: [String] = []
        for _ in 0..<4 { booted.append(try card.boot()) }
        #expect(booted == ["b", "b", "b", "a"], "three tries of b, then a with no operator")
        let settled = try Installer.settle(box: card.box(bootID: "boot-5"), layout: card.layout, statePath: card.statePath)
        guard case .rolledBack(let v, let reason) = settled else { Issue.record("\(settled)"); return }
        #expect(v == ReleaseVersion("1.2.0") && reason.contains("3 tries"))
        #expect(BootEntries(esp: card.esp).entry(slot: "b") == nil, "its entry is gone: it is never tried again by accident")
        let state = UpdateState.load(path: card.statePath)
        #expect(state.failed == [ReleaseVersion("1.2.0")!] && state.last?.result == .rolledBack)
        await #expect {
            _ = try await Installer.install(try await r.open(), fetch: Served(r.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath)
        } throws: { ($0 as? UpdateError) == .failedBefore(ReleaseVersion("1.2.0")!) }
        var told = Installer.Options()
        told.retryFailed = true
        _ = try await Installer.install(try await r.open(), fetch: Served(r.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath, options: told)
        #expect(BootEntries(esp: card.esp).entry(slot: "b")?.triesLeft == 3)
    }

    /// Each refusal leaves both slots and the boot partition as they were.
    @Test func refusalsWriteNothing() async throws {
        let card = try Card.make(running: [UInt8](repeating: 3, count: 8192))
        var state = UpdateState()
        state.minimum = ReleaseVersion("1.5.0")
        try state.save(path: card.statePath)
        let before = (card.slot("a"), card.slot("b"), try FileManager.default.contentsOfDirectory(atPath: card.esp + "/loader/entries"))
        let cases: [(Release, String)] = [
            (try Release.make(version: "1.6.0", arch: "arm64"), "wrong_architecture"),
            (try Release.make(version: "1.4.9"), "below_minimum"),
        ]
        for (release, kind) in cases {
            await #expect {
                _ = try await Installer.install(try await release.open(), fetch: Served(release.bytes).fetch, layout: card.layout,
                                                box: card.box(), statePath: card.statePath)
            } throws: { ($0 as? UpdateError)?.kind == kind }
            #expect(UpdateState.load(path: card.statePath).last?.result == .refused)
        }
        let same = try Release.make(version: "1.0.0")
        var floorless = UpdateState()
        floorless.generation = 1
        try floorless.save(path: card.statePath)
        await #expect {
            _ = try await Installer.install(try await same.open(), fetch: Served(same.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath)
        } throws: { ($0 as? UpdateError)?.kind == "already_running" }
        #expect(card.slot("a") == before.0 && card.slot("b") == before.1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: card.esp + "/loader/entries") == before.2)
    }

    /// A power cut in the middle of the slot write: the card boots the old slot (the target's
    /// entry went first), and the retried install completes.
    @Test func aPowerCutMidInstallBootsTheOldSlotAndTheRetryCompletes() async throws {
        let old = try Release.make(version: "1.0.0")
        let card = try Card.make(running: old.rootfs)
        let firstTry = try Release.make(version: "1.1.0", in: old.dir, name: "first")
        _ = try await Installer.install(try await firstTry.open(), fetch: Served(firstTry.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath)
        // Now 1.2.0 (other content) is cut off half way into slot b, which held 1.1.0 on trial.
        var rg = SeededBytes(seed: 5)
        let next = try Release.make(version: "1.2.0", rootfs: rg.next(64 * 4096), in: old.dir, name: "next")
        struct PowerCut: Error {}
        await #expect(throws: PowerCut.self) {
            _ = try await Installer.install(try await next.open(), fetch: Served(next.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath,
                                            checkpoint: { if $0 == 30 { throw PowerCut() } })
        }
        #expect(BootEntries(esp: card.esp).entry(slot: "b") == nil, "the half-written slot is not bootable")
        #expect(try card.boot() == "a")
        #expect(card.slot("a") == old.rootfs)
        let r = try await Installer.install(try await next.open(), fetch: Served(next.bytes).fetch, layout: card.layout, box: card.box(bootID: "boot-2"), statePath: card.statePath)
        #expect(r.writer.kept >= 29 && card.slot("b") == next.rootfs)
        #expect(try card.boot() == "b")
    }

    @Test func slotEntriesAreParsedStrictly() {
        #expect(BootEntries.parse(fileName: "junction-b+2-1.conf")! == ("b", 2, 1))
        #expect(BootEntries.parse(fileName: "junction-a.conf")! == ("a", nil, nil))
        #expect(BootEntries.parse(fileName: "junction-a+3.conf")! == ("a", 3, nil))
        for bad in ["junction-c.conf", "junction-a+x.conf", "junction-a+99999.conf", "junction-a+1-.conf", "debian.conf", "junction-a+-1.conf"] {
            #expect(BootEntries.parse(fileName: bad) == nil, "\(bad)")
        }
        #expect(BootEntries.bootedSlot(cmdline: "root=x ro junction.slot=b quiet\n") == "b")
        #expect(BootEntries.bootedSlot(cmdline: "root=x junction.slot=c") == nil)
        #expect(BootEntries.options(from: "BOOT_IMAGE=/x root=PARTUUID=1-02 ro quiet junction.slot=a", root: "PARTUUID=1-03", slot: "b")
                == "root=PARTUUID=1-03 ro quiet junction.slot=b")
    }

    @Test func aLayoutFileIsReadStrictly() throws {
        let card = try Card.make(running: [0])
        #expect(try Installer.Layout.read(esp: card.esp) == card.layout)
        try "a PARTUUID=1 /dev/x\n".write(toFile: card.esp + "/junction/slots", atomically: true, encoding: .utf8)
        #expect(throws: UpdateError.self) { try Installer.Layout.read(esp: card.esp) }
        try "a PARTUUID=1 /dev/x\nb rm -rf\n".write(toFile: card.esp + "/junction/slots", atomically: true, encoding: .utf8)
        #expect(throws: UpdateError.self) { try Installer.Layout.read(esp: card.esp) }
    }

    @Test func anUnreadableStateIsKeptAsideNotFatal() throws {
        let dir = tempDir()
        let path = dir + "/update/state.json"
        try FileManager.default.createDirectory(atPath: dir + "/update", withIntermediateDirectories: true)
        try "{not json".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(UpdateState.load(path: path) == UpdateState())
        #expect(FileManager.default.fileExists(atPath: path + ".unreadable"))
    }
}
