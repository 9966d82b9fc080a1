import SystemCrypto
import Foundation
import Logging
import Synchronization
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Update
@testable import Uplink

/// The fleet without VMs (issue 24): 80 boxes on loopback, each with the real heartbeat service,
/// the real update agent and its ranged download from the commune; only the slot install is
/// replaced by a recorder (it writes the bundle's root filesystem to a file, checked block by
/// block as on a box) and the reboot by a step of the test.
@Suite(.serialized) struct FleetTests {
    static let key = ReleaseKey(try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 0x31, count: 32)))

    /// What one simulated box runs and remembers.
    final class SimBox: @unchecked Sendable {
        let id: String
        let lock = NSLock()
        var release = "1.0.0"
        var booted = "a"
        var slots = ["a": ("1.0.0", "good"), "b": (String?.none, "empty")]
        var pending: String?
        var last: FleetUpdate.Outcome?
        var failed: [String] = []
        var installs: [String] = []
        init(id: String) { self.id = id }

        var standing: FleetUpdate.Report {
            lock.withLock {
                FleetUpdate.Report(release: release, arch: "amd64", booted: booted,
                                   slots: slots.keys.sorted().map { FleetUpdate.Slot(name: $0, release: slots[$0]!.0, state: slots[$0]!.1) },
                                   pending: pending, last: last, failed: failed)
            }
        }

        func installed(_ version: String) {
            lock.withLock {
                installs.append(version)
                let other = booted == "a" ? "b" : "a"
                slots[other] = (version, "trial")
                pending = version
                last = .init(version: version, result: "installed", reason: nil, at: .now())
            }
        }

        /// Power on after an install: a good release is blessed; a bad one uses its tries and
        /// the box is back on the old slot.
        func reboot(good: Bool) {
            lock.withLock {
                guard let p = pending else { return }
                let other = booted == "a" ? "b" : "a"
                if good {
                    booted = other
                    release = p
                    slots[other] = (p, "good")
                    last = .init(version: p, result: "blessed", reason: nil, at: .now())
                } else {
                    slots[other] = (p, "failed")
                    failed.append(p)
                    last = .init(version: p, result: "rolled_back", reason: "recorded 0 of 3 segments within 300 s", at: .now())
                }
                pending = nil
            }
        }
    }

    final class Gauge: Sendable {
        let now = Mutex(0), most = Mutex(0)
        func enter() { let n = now.withLock { $0 += 1; return $0 }; most.withLock { $0 = max($0, n) } }
        func leave() { now.withLock { $0 -= 1 } }
    }

    func bundle(version: String, in dir: String) throws -> String {
        let image = (0..<48).flatMap { i in i % 4 == 0 ? [UInt8](repeating: 0, count: 4096) : (0..<4096).map { _ in UInt8.random(in: 0...255) } }
        try Data(image).write(to: URL(fileURLWithPath: dir + "/rootfs-\(version)"))
        try Data("k".utf8).write(to: URL(fileURLWithPath: dir + "/k"))
        try Data("i".utf8).write(to: URL(fileURLWithPath: dir + "/i"))
        var input = BundleWriter.Input(rootfs: dir + "/rootfs-\(version)", kernel: dir + "/k", initrd: dir + "/i", version: ReleaseVersion(version)!, arch: "amd64")
        input.blockBytes = 4096
        let out = dir + "/junction-\(version)-amd64.jub"
        _ = try BundleWriter.write(input, key: Self.key, to: out)
        return out
    }

    func addRelease(_ server: RunningServer, _ path: String, version: String) async throws {
        let size = Int64(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int)
        try await server.catalog.addRelease(.init(version: version, arch: "amd64", path: path, bytes: size, sha256: try TusEndpoint.sha256(path),
                                                  minimumVersion: version, signedBy: Keyring.fingerprint(Self.key.key.publicKey), notes: nil, added: .now()))
    }

    @Test func aBadReleaseStopsAtItsCanariesAndAGoodOneReachesEveryBox() async throws {
        let server = try await RunningServer.start()
        let dir = NSTemporaryDirectory() + "fleet-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let keyring = Keyring(keys: [Self.key.key.publicKey])
        let gauge = Gauge()
        var boxes: [(SimBox, HeartbeatService, Ring)] = []
        for n in 0..<80 {
            let id = String(format: "box-%02d", n)
            let token = try await server.catalog.addDevice(id: id)
            let sim = SimBox(id: id)
            let ring = try await Ring.open(.init(root: dir + "/" + id, budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
            var agentConfig = UpdateAgent.Configuration(baseURL: server.url, token: Secret(token))
            agentConfig.requestBytes = 64 << 10
            agentConfig.retryPause = .milliseconds(50)
            let slotPath = dir + "/\(id).slot"
            let agent = UpdateAgent(configuration: agentConfig, transport: HTTPTransport(), keyring: keyring,
                                    evidenceWaiting: { false }, standing: { sim.standing },
                                    install: { bundle, offer, fetch, pace in
                                        gauge.enter()
                                        defer { gauge.leave() }
                                        FileManager.default.createFile(atPath: slotPath, contents: nil)
                                        _ = try await SlotWriter.write(bundle, fetch: fetch, target: slotPath, current: nil, maxRequestBytes: 64 << 10, pace: pace)
                                        sim.installed(offer.version)
                                    }, logger: Logger(label: "t"))
            var service = HeartbeatService(configuration: .init(url: server.url + Heartbeat.path, token: Secret(token), device: id, camera: "cam1"),
                                           transport: HTTPTransport(), ring: ring, version: "1.0.0", logger: Logger(label: "t")) { ("recording", nil, true, true) }
            service.updates = agent
            boxes.append((sim, service, ring))
        }
        // Every box heartbeats once, so the commune knows who can update.
        func round() async {
            await withTaskGroup(of: Void.self) { group in
                for (_, service, _) in boxes {
                    group.addTask {
                        var known = HeartbeatService.Known()
                        _ = await service.beat(&known)
                        await (service.updates as? UpdateAgent)?.settle()
                    }
                }
            }
        }
        await round()

        // A bad release: its canaries fail, the rollout stops, nobody else gets it.
        try await addRelease(server, try bundle(version: "1.1.0", in: dir), version: "1.1.0")
        let (bad, _) = try await server.catalog.startRollout(version: "1.1.0", arch: "amd64", waves: Rollout.parseWaves("2,8,all")!, soakSeconds: 0, maxDownloads: 3)
        for _ in 0..<8 {
            await round()
            for (sim, _, _) in boxes { sim.reboot(good: false) }
        }
        let (stopped, badBoxes) = try #require(try await server.catalog.rollout(id: bad.id))
        #expect(stopped.state == .stopped && stopped.reason?.contains("canary") == true, "\(stopped)")
        let reached = boxes.filter { !$0.0.installs.isEmpty }.map(\.0.id)
        let canaries = badBoxes.filter { $0.wave == 0 }.map(\.device)
        #expect(Set(reached).isSubset(of: Set(canaries)) && !reached.isEmpty, "reached \(reached), canaries \(canaries)")
        #expect(badBoxes.filter { $0.wave > 0 }.allSatisfy { $0.state == .waiting }, "no box outside the first wave was offered it")

        // A good release reaches all 80, in waves, never more than 3 downloading at once.
        try await addRelease(server, try bundle(version: "1.2.0", in: dir), version: "1.2.0")
        let (good, _) = try await server.catalog.startRollout(version: "1.2.0", arch: "amd64", waves: Rollout.parseWaves("2,8,all")!, soakSeconds: 0, maxDownloads: 3)
        var rounds = 0
        while rounds < 200, try await server.catalog.rollout(id: good.id)?.0.state == .running {
            await round()
            for (sim, _, _) in boxes { sim.reboot(good: true) }
            rounds += 1
        }
        let (done, goodBoxes) = try #require(try await server.catalog.rollout(id: good.id))
        #expect(done.state == .done, "\(done) after \(rounds) rounds")
        #expect(goodBoxes.count == 80 && goodBoxes.allSatisfy { $0.state == .blessed })
        #expect(boxes.allSatisfy { $0.0.release == "1.2.0" }, "80 of 80 run 1.2.0")
        #expect(gauge.most.withLock { $0 } <= 3, "at most 3 downloads at once: \(gauge.most.withLock { $0 })")
        #expect(gauge.most.withLock { $0 } >= 2, "downloads did overlap (the cap was exercised)")
        let audit = try await server.catalog.auditLog(limit: 2000).filter { $0.action == "rollout" }
        #expect(audit.contains { $0.detail.contains("canary") } && audit.contains { $0.detail.contains("every wave is done") })
        for (_, _, ring) in boxes { await ring.close() }
        await server.stop()
    }

    /// Flagged footage first: a box with an open footage request is not offered the release,
    /// and a download pauses while flagged footage waits to go up.
    @Test func evidenceGoesFirst() async throws {
        let server = try await RunningServer.start()
        let dir = NSTemporaryDirectory() + "fleet-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let token = try await server.catalog.addDevice(id: "box-a")
        let sim = SimBox(id: "box-a")
        let waiting = Mutex(true)
        let installs = Mutex(0)
        var config = UpdateAgent.Configuration(baseURL: server.url, token: Secret(token))
        config.quietPoll = .milliseconds(20)
        let agent = UpdateAgent(configuration: config, transport: HTTPTransport(), keyring: Keyring(keys: [Self.key.key.publicKey]),
                                evidenceWaiting: { waiting.withLock { $0 } }, standing: { sim.standing },
                                install: { bundle, offer, fetch, pace in
                                    try await pace(1)
                                    installs.withLock { $0 += 1 }
                                    sim.installed(offer.version)
                                }, logger: Logger(label: "t"))
        let ring = try await Ring.open(.init(root: dir + "/ring", budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var service = HeartbeatService(configuration: .init(url: server.url + Heartbeat.path, token: Secret(token), device: "box-a", camera: "cam1"),
                                       transport: HTTPTransport(), ring: ring, version: "1.0.0", logger: Logger(label: "t")) { ("recording", nil, true, true) }
        service.updates = agent
        var known = HeartbeatService.Known()
        _ = await service.beat(&known)
        try await addRelease(server, try bundle(version: "1.2.0", in: dir), version: "1.2.0")
        _ = try await server.catalog.startRollout(version: "1.2.0", arch: "amd64", waves: [nil], soakSeconds: 0)
        let t0 = Timestamp.now()
        let request = try await server.catalog.addRequest(device: "box-a", camera: "cam1", from: t0 - 60, to: t0, reason: nil)
        _ = await service.beat(&known)
        #expect(await agent.busy == false, "no offer during an open footage request")
        _ = try await server.catalog.query("UPDATE request SET state = 'complete' WHERE id = ?", [.text(request.id)])
        _ = await service.beat(&known)
        #expect(await agent.busy, "offered once the request is done")
        try await Task.sleep(for: .milliseconds(300))
        #expect(installs.withLock { $0 } == 0, "the install waits while flagged footage waits")
        waiting.withLock { $0 = false }
        await agent.settle()
        #expect(installs.withLock { $0 } == 1)
        await ring.close()
        await server.stop()
    }

    /// A box that cannot download (no agent: a card with one root slot, or the agent off) still
    /// tells the commune its release, slot and last update in every heartbeat.
    @Test func everyBoxReportsWhereItStands() async throws {
        let server = try await RunningServer.start()
        let dir = NSTemporaryDirectory() + "fleet-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = try await server.catalog.addDevice(id: "box-s")
        let ring = try await Ring.open(.init(root: dir + "/ring", budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var service = HeartbeatService(configuration: .init(url: server.url + Heartbeat.path, token: Secret(token), device: "box-s", camera: "cam1"),
                                       transport: HTTPTransport(), ring: ring, version: "1.0.0", logger: Logger(label: "t")) { ("recording", nil, true, true) }
        let said = FleetUpdate.Report(release: "1.0.0", arch: "arm64", booted: "a", slots: [.init(name: "a", release: "1.0.0", state: "good"),
                                                                                           .init(name: "b", release: nil, state: "empty")],
                                      last: .init(version: "1.1.0", result: "rolled_back", reason: "recorded 0 of 3 segments within 900 s of boot",
                                                  at: Timestamp(rfc3339: "2026-12-01T10:00:00Z")!), failed: ["1.1.0"])
        service.standing = { said }
        #expect(try await server.catalog.updateReport(device: "box-s") == nil)
        var known = HeartbeatService.Known()
        _ = await service.beat(&known)
        #expect(try await server.catalog.updateReport(device: "box-s") == said)
        await ring.close()
        await server.stop()
    }

    /// On a box the daemon (unprivileged) only hands the offer on; the root helper fetches it by
    /// range, writes slot b (each block checked), makes b the next boot's first try with its
    /// tries, waits for the flagged footage in flight, then reboots; the next boot settles it.
    @Test func theDaemonHandsTheOfferToTheRootHelper() async throws {
        let server = try await RunningServer.start()
        let dir = NSTemporaryDirectory() + "fleet-" + UUID().uuidString
        let esp = dir + "/esp", storage = dir + "/data"
        for d in [esp + "/loader/entries", esp + "/junction", storage] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([UInt8](repeating: 7, count: 4096 * 48)).write(to: URL(fileURLWithPath: dir + "/slot-a"))
        try Data([UInt8](repeating: 0x55, count: 8192)).write(to: URL(fileURLWithPath: dir + "/slot-b"))
        try "a PARTUUID=0000abcd-02 \(dir)/slot-a\nb PARTUUID=0000abcd-03 \(dir)/slot-b\n".write(toFile: esp + "/junction/slots", atomically: true, encoding: .utf8)
        try BootEntries(esp: esp).install(slot: "a", release: "1.0.0", generation: 1, options: "root=PARTUUID=0000abcd-02 ro junction.slot=a")
        try FileManager.default.moveItem(atPath: esp + "/loader/entries/junction-a+3.conf", toPath: esp + "/loader/entries/junction-a.conf")
        let cmdline = "root=PARTUUID=0000abcd-02 ro quiet junction.slot=a"
        let statePath = UpdateState.path(storage: storage)
        let standing: @Sendable () -> FleetUpdate.Report = {
            Installer.standing(release: "1.0.0", arch: "amd64", cmdline: cmdline, esp: esp, statePath: statePath)
        }
        let token = try await server.catalog.addDevice(id: "box-h")
        let ring = try await Ring.open(.init(root: storage + "/ring", budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var service = HeartbeatService(configuration: .init(url: server.url + Heartbeat.path, token: Secret(token), device: "box-h", camera: "cam1"),
                                       transport: HTTPTransport(), ring: ring, version: "1.0.0", logger: Logger(label: "t")) { ("recording", nil, true, true) }
        let offerPath = UpdateHandoff.offerPath(storage: storage)
        service.updates = UpdateHandoff(offerPath: offerPath, progressPath: UpdateProgress.path(storage: storage), standing: standing, logger: Logger(label: "t"))
        var known = HeartbeatService.Known()
        _ = await service.beat(&known)
        let bundlePath = try bundle(version: "1.2.0", in: dir)
        try await addRelease(server, bundlePath, version: "1.2.0")
        _ = try await server.catalog.startRollout(version: "1.2.0", arch: "amd64", waves: [nil], soakSeconds: 0)
        _ = await service.beat(&known)
        let offer = try #require(try UpdateApplier.readOffer(path: offerPath))
        #expect(offer.version == "1.2.0" && offer.arch == "amd64")
        // The same offer at every heartbeat leaves the file alone (it was rewritten at most
        // beats on a box: the encoder's key order varies).
        func inode() -> UInt64 { var st = stat(); _ = lstat(offerPath, &st); return UInt64(st.st_ino) }
        let first = inode()
        for _ in 0..<6 { _ = await service.beat(&known) }
        #expect(inode() == first, "the offer file is not rewritten for the same offer")

        // The root helper: evidence first, for the download and for the reboot.
        let waiting = Mutex(4), reboots = Mutex(0)
        var c = UpdateApplier.Configuration(baseURL: server.url, token: Secret(token), offerPath: offerPath, stateDirectory: storage + "/update",
                                            layout: try Installer.Layout.read(esp: esp),
                                            box: .init(version: ReleaseVersion("1.0.0")!, arch: "amd64", bootedSlot: "a", cmdline: cmdline, bootID: "boot-1"),
                                            release: "1.0.0")
        c.poll = .milliseconds(10)
        c.agent.quietPoll = .milliseconds(10)
        c.agent.requestBytes = 16 << 10
        let applier = UpdateApplier(configuration: c, transport: HTTPTransport(), keyring: Keyring(keys: [Self.key.key.publicKey]),
                                    evidenceWaiting: { waiting.withLock { n in n -= 1; return n >= 0 } },
                                    reboot: { #expect(waiting.withLock { $0 } < 0, "no reboot while footage waits"); reboots.withLock { $0 += 1 } },
                                    logger: Logger(label: "t"))
        guard case .installed(let version, let slot, let rebooted, let fetched) = await applier.run() else {
            Issue.record("not installed")
            return
        }
        #expect(version == "1.2.0" && slot == "b" && rebooted)
        #expect(fetched.bundleBytes == Int64(try FileManager.default.attributesOfItem(atPath: bundlePath)[.size] as! Int))
        // The header is read in one window of at most headLimit bytes, which may reach into what
        // the blocks fetch again: that window is the only part fetched twice.
        #expect(fetched.bytes > 0 && fetched.bytes <= fetched.bundleBytes + Int64(UpdateBundle.headLimit) && fetched.requests > 0, "\(fetched)")
        #expect(fetched.kept + fetched.zero + fetched.copied + fetched.fetchedBlocks == 48, "every block of the slot accounted for: \(fetched)")
        #expect(reboots.withLock { $0 } == 1)
        #expect(!FileManager.default.fileExists(atPath: offerPath), "the offer is used up")
        let written = try Data(contentsOf: URL(fileURLWithPath: dir + "/slot-b"))
        let want = try Data(contentsOf: URL(fileURLWithPath: dir + "/rootfs-1.2.0"))
        #expect(written.prefix(want.count) == want, "slot b holds the release's root file system")
        #expect(BootEntries(esp: esp).bootOrder().first?.file == "junction-b+3.conf", "b boots first, with 3 tries")
        #expect(standing().pending == "1.2.0")

        // The daemon does not hand the same release on again while it is pending.
        _ = await service.beat(&known)
        #expect(!FileManager.default.fileExists(atPath: offerPath))
        #expect(await applier.run() == .nothingOffered)

        // The next boot, on b: once systemd-bless-boot removed the counter, settle keeps it.
        let boxB = Installer.Box(version: ReleaseVersion("1.2.0")!, arch: "amd64", bootedSlot: "b",
                                 cmdline: "root=PARTUUID=0000abcd-03 ro quiet junction.slot=b", bootID: "boot-2")
        #expect(try Installer.settle(box: boxB, layout: c.layout, statePath: statePath) == .onTrial(ReleaseVersion("1.2.0")!))
        try FileManager.default.moveItem(atPath: esp + "/loader/entries/junction-b+3.conf", toPath: esp + "/loader/entries/junction-b.conf")
        #expect(try Installer.settle(box: boxB, layout: c.layout, statePath: statePath) == .blessed(ReleaseVersion("1.2.0")!))
        await ring.close()
        await server.stop()
    }

    /// What root reads of the daemon's: the offer is bounded and never followed through a link,
    /// root's folder is refused when it is a link, and "footage waits" is taken only from this
    /// boot's fresh uplink.json.
    @Test func theRootHelperTrustsNothingTheDaemonWrites() throws {
        let dir = NSTemporaryDirectory() + "fleet-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try UpdateApplier.readOffer(path: dir + "/none.json") == nil)
        try Data(repeating: 0x20, count: 65537).write(to: URL(fileURLWithPath: dir + "/big.json"))
        #expect(throws: UpdateError.self) { try UpdateApplier.readOffer(path: dir + "/big.json") }
        let ok = try JSONEncoder().encode(FleetUpdate.Offer(version: "1.2.0", arch: "amd64", path: "/x", bytes: 10, rollout: "r"))
        try ok.write(to: URL(fileURLWithPath: dir + "/elsewhere/o.json"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: dir + "/elsewhere/o.json")
        #expect(throws: UpdateError.self) { try UpdateApplier.readOffer(path: dir + "/link.json") }
        try Data(#"{"version":"1.2.0","arch":"amd64","path":"/x","bytes":-5,"rollout":"r"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/neg.json"))
        #expect(throws: UpdateError.self) { try UpdateApplier.readOffer(path: dir + "/neg.json") }
        try UpdateApplier.ownDirectory(dir + "/update")
        try FileManager.default.createSymbolicLink(atPath: dir + "/update-link", withDestinationPath: dir + "/elsewhere")
        #expect(throws: UpdateError.self) { try UpdateApplier.ownDirectory(dir + "/update-link") }

        let path = dir + "/uplink.json"
        func write(_ change: (inout UplinkHealth) -> Void) throws {
            var h = UplinkHealth(server: "s", bootID: "boot-1")
            change(&h)
            try JSONEncoder().encode(h).write(to: URL(fileURLWithPath: path))
        }
        #expect(!UplinkMonitor.evidenceWaiting(path: path, bootID: "boot-1"), "no file: nothing known to wait")
        try write { $0.queued = 2 }
        #expect(UplinkMonitor.evidenceWaiting(path: path, bootID: "boot-1"))
        #expect(!UplinkMonitor.evidenceWaiting(path: path, bootID: "boot-2"), "another boot's file")
        #expect(!UplinkMonitor.evidenceWaiting(path: path, bootID: "boot-1", now: .now() + 601), "a stale file")
        try write { $0.queued = 0; $0.current = .init(segment: "s", offset: 1, bytes: 2, bytesPerSecond: 0) }
        #expect(UplinkMonitor.evidenceWaiting(path: path, bootID: "boot-1"), "an upload in flight")
        try write { $0.queued = 0 }
        #expect(!UplinkMonitor.evidenceWaiting(path: path, bootID: "boot-1"))
    }
}
