import Foundation
import Logging
import Synchronization
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Update
@testable import Uplink

/// Settings from the commune (issue 24, item 7), end to end without a recorder: the commune
/// keeps a revision, the real heartbeat carries it, the daemon's handoff passes it to root's
/// applier (whose restart and recorder are replaced), and the outcome comes back to the catalog
/// and its audit.
@Suite(.serialized) struct RemoteSettingsTests {
    static let base = """
        [device]
        id = "box-s"
        [camera]
        url = "rtsp://127.0.0.1:8554/cam"
        [update]
        health_segments = 1
        health_deadline_seconds = 60
        """

    @Test func aChangeGoesOutOnTheHeartbeatAndWhatBecameOfItComesBack() async throws {
        let server = try await RunningServer.start()
        let storage = NSTemporaryDirectory() + "remote-settings-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: storage + "/update", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: storage) }
        let basePath = storage + "/junction.toml"
        try Self.base.write(toFile: basePath, atomically: true, encoding: .utf8)
        let token = try await server.catalog.addDevice(id: "box-s")
        let ring = try await Ring.open(.init(root: storage + "/ring", budget: .bytes(1 << 30), reserveBytes: 0), logger: Logger(label: "t"))
        var service = HeartbeatService(configuration: .init(url: server.url + Heartbeat.path, token: Secret(token), device: "box-s", camera: "cam1"),
                                       transport: HTTPTransport(), ring: ring, version: "1.0.0", logger: Logger(label: "t")) { ("recording", nil, true, true) }
        service.settings = SettingsHandoff(storage: storage, logger: Logger(label: "t"))
        let offerPath = SettingsApplier.offerPath(storage: storage)
        var known = HeartbeatService.Known()
        _ = await service.beat(&known)
        #expect(!FileManager.default.fileExists(atPath: offerPath), "nothing sent, nothing handed on")
        #expect(try await server.catalog.settingsReport(device: "box-s") == RemoteSettings.Report(), "the box reports even with nothing in force")

        let r1 = try await server.catalog.sendSettings(device: "box-s", toml: "[upload]\nmax_kbps = 256\n", by: "chief")
        #expect(r1 == 1)
        _ = await service.beat(&known)
        let handed = try #require(try StateFile.decode(RemoteSettings.Offer.self, path: offerPath, what: "an offer"))
        #expect(handed == RemoteSettings.Offer(revision: 1, toml: "[upload]\nmax_kbps = 256\n"))

        let restarts = Mutex(0)
        func applier() -> SettingsApplier {
            var c = SettingsApplier.Configuration(basePath: basePath, statePath: SettingsState.path(storage: storage), offerPath: offerPath, bootID: "b")
            c.poll = .milliseconds(1)
            return SettingsApplier(configuration: c, restart: { restarts.withLock { $0 += 1 } },
                                   observe: { _ in .init(recorderBootID: "b", recorderPID: 7 + Int32(restarts.withLock { $0 }), segmentsWritten: 1,
                                                         uplinkBootID: "b", heartbeatAccepted: true) },
                                   seconds: { 0 })
        }
        #expect(await applier().run() == .applied(revision: 1))
        _ = await service.beat(&known)
        let sent = try await server.catalog.settingsRevisions(device: "box-s")
        #expect(sent.count == 1 && sent[0].result == .applied && sent[0].sentBy == "chief")
        #expect(try await server.catalog.settingsReport(device: "box-s")?.inForce == 1)
        for _ in 0..<3 { _ = await service.beat(&known) }
        #expect(!FileManager.default.fileExists(atPath: offerPath), "an applied revision is not offered again")

        // A value the box cannot take passes the commune (it checks only what it can) and is
        // refused by the box, with the line, and the catalog says so.
        #expect(try await server.catalog.sendSettings(device: "box-s", toml: "[upload]\nmax_kbps = 99999999\n", by: "chief") == 2)
        _ = await service.beat(&known)
        guard case .refused(2, _) = await applier().run() else { Issue.record("not refused"); return }
        _ = await service.beat(&known)
        let after = try await server.catalog.settingsRevisions(device: "box-s")
        #expect(after.first?.revision == 2 && after.first?.result == .refused && after.first?.reason?.contains("upload.max_kbps") == true, "\(after)")
        #expect(try await server.catalog.settingsReport(device: "box-s")?.inForce == 1, "revision 1 stays in force")
        #expect(restarts.withLock { $0 } == 1)
        let audit = try await server.catalog.auditLog().map(\.action)
        #expect(audit.filter { $0 == "settings sent" }.count == 2 && audit.filter { $0 == "settings" }.count == 2, "\(audit)")
        await ring.close()
        await server.stop()
    }

    @Test func theCommuneRefusesWhatNoBoxMayTakeAndCountsPastWhatTheBoxHasSeen() async throws {
        let server = try await RunningServer.start()
        _ = try await server.catalog.addDevice(id: "box-t")
        await #expect(throws: Catalog.SettingsError.unknownDevice("box-x")) {
            _ = try await server.catalog.sendSettings(device: "box-x", toml: "[upload]\nmax_kbps = 1\n", by: nil)
        }
        do {
            _ = try await server.catalog.sendSettings(device: "box-t", toml: "[server]\nurl = \"https://elsewhere.example\"\n", by: nil)
            Issue.record("a [server] change was kept")
        } catch let Catalog.SettingsError.invalid(why) {
            #expect(why.contains("line 2") && why.contains("server.url"), "\(why)")
        }
        #expect(try await server.catalog.settingsRevisions(device: "box-t").isEmpty)
        // A box that has seen revision 7 (a catalog restored from an old backup): the next is 8,
        // or the box would never take it.
        _ = try await server.catalog.settingsHeartbeat(device: "box-t", report: .init(inForce: 7, seen: 7))
        #expect(try await server.catalog.sendSettings(device: "box-t", toml: "[log]\nlevel = \"debug\"\n", by: nil) == 8)
        let (offer, _) = try await server.catalog.settingsHeartbeat(device: "box-t", report: .init(inForce: 7, seen: 7))
        #expect(offer?.revision == 8)
        let (none, _) = try await server.catalog.settingsHeartbeat(device: "box-t", report: .init(inForce: 7, seen: 8))
        #expect(none == nil, "a revision the box has taken up is not offered again")
        await server.stop()
    }
}
