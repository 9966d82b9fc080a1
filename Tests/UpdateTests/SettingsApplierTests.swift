import Foundation
import Synchronization
import Testing
import Config
import Wire
@testable import Update

/// Root's side of the commune's settings (issue 24, item 7), with the recorder and the clock
/// replaced: kept only once the restarted recorder recorded and the commune was reached;
/// otherwise the previous settings come back; refused changes touch nothing; each revision is
/// tried once; a check cut short is rolled back.
@Suite struct SettingsApplierTests {
    static let base = """
        [device]
        id = "box-s"
        [camera]
        url = "rtsp://127.0.0.1:8554/cam"
        [update]
        health_segments = 2
        health_deadline_seconds = 60
        """

    /// A box folder, a fake recorder (its pid changes at each restart; it seals `perLook`
    /// segments at each look once restarted when `records`) and a clock that moves 5 s a sleep.
    final class Box: Sendable {
        let dir = NSTemporaryDirectory() + "settings-" + UUID().uuidString
        var basePath: String { dir + "/junction.toml" }
        var statePath: String { SettingsState.path(storage: dir) }
        var offerPath: String { SettingsApplier.offerPath(storage: dir) }
        let records: Bool
        /// A restart that does nothing: the old recorder (its pid unchanged) goes on recording.
        let stuck: Bool
        let restarts = Mutex(0)
        let segments = Mutex(0)
        let clock = Mutex(0.0)
        let restartedAt = Mutex<Timestamp?>(nil)

        init(records: Bool, stuck: Bool = false) throws {
            self.records = records
            self.stuck = stuck
            try FileManager.default.createDirectory(atPath: dir + "/update", withIntermediateDirectories: true)
            try SettingsApplierTests.base.write(toFile: basePath, atomically: true, encoding: .utf8)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func offer(_ revision: Int64, _ toml: String) throws {
            try JSONEncoder().encode(RemoteSettings.Offer(revision: revision, toml: toml)).write(to: URL(fileURLWithPath: offerPath))
        }

        func applier() -> SettingsApplier {
            var c = SettingsApplier.Configuration(basePath: basePath, statePath: statePath, offerPath: offerPath, bootID: "boot-1")
            c.poll = .seconds(5)
            return SettingsApplier(configuration: c,
                                   restart: { self.restarts.withLock { $0 += 1 }; if !self.stuck { self.segments.withLock { $0 = 0 } } },
                                   observe: { after in
                                       let pid = Int32(100 + (self.stuck ? 0 : self.restarts.withLock { $0 }))
                                       if self.records, self.stuck || self.restarts.withLock({ $0 }) > 0 { self.segments.withLock { $0 += 1 } }
                                       return HealthGate.Observation(recorderBootID: "boot-1", recorderPID: pid, segmentsWritten: self.segments.withLock { $0 },
                                                                     uplinkBootID: "boot-1", heartbeatAccepted: self.records && self.restarts.withLock { $0 } > 0)
                                   },
                                   seconds: { self.clock.withLock { $0 } },
                                   sleep: { d in self.clock.withLock { $0 += Double(d.components.seconds) } })
        }

        var state: SettingsState { SettingsState.load(path: statePath) }
        var baseSHA: String { SettingsState.sha256(Array(try! Data(contentsOf: URL(fileURLWithPath: basePath)))) }
    }

    @Test func aChangeThatRecordsIsKeptAndLaidOverTheFile() async throws {
        let box = try Box(records: true)
        try box.offer(1, "[upload]\nmax_kbps = 256\n")
        #expect(await box.applier().run() == .applied(revision: 1))
        #expect(!FileManager.default.fileExists(atPath: box.offerPath), "the offer is taken away, so the path unit does not fire again")
        #expect(box.restarts.withLock { $0 } == 1)
        let s = box.state
        #expect(s.inForce?.revision == 1 && s.trial == nil && s.seen == 1 && s.last?.result == .applied)
        let overlay = try #require(s.overlay(baseSHA256: box.baseSHA, bootID: "boot-2"), "kept across boots")
        #expect(try JunctionConfiguration.load(path: box.basePath, overlay: overlay).upload.maxKbps == 256)
        #expect(s.report == RemoteSettings.Report(inForce: 1, seen: 1, last: s.last))
    }

    @Test func aChangeThatStopsRecordingIsRolledBackAtTheDeadline() async throws {
        let box = try Box(records: true)
        try box.offer(1, "[upload]\nmax_kbps = 256\n")
        #expect(await box.applier().run() == .applied(revision: 1))
        let broken = try Box(records: false)
        try FileManager.default.removeItem(atPath: broken.dir)
        try FileManager.default.copyItem(atPath: box.dir, toPath: broken.dir)
        try broken.offer(2, "[camera]\nurl = \"rtsp://127.0.0.1:9/nothing\"\n")
        guard case .rolledBack(2, let why) = await broken.applier().run() else { Issue.record("not rolled back"); return }
        #expect(why.contains("recorded 0 of 2 segments") && why.contains("within 60 s of the restart with them") && why.contains("previous settings are back"), "\(why)")
        #expect(broken.restarts.withLock { $0 } == 2, "restarted with the change, and again with the previous settings")
        #expect(broken.clock.withLock { $0 } >= 60 && broken.clock.withLock { $0 } < 70, "gave up at the deadline")
        let s = broken.state
        #expect(s.inForce?.revision == 1, "the revision before is in force again")
        #expect(s.trial == nil && s.seen == 2 && s.last?.result == .rolledBack && s.last?.revision == 2)
    }

    @Test func theRecorderThatRanWithTheOldSettingsCountsForNothing() async throws {
        let box = try Box(records: true, stuck: true)
        try box.offer(1, "[upload]\nmax_kbps = 256\n")
        guard case .rolledBack(1, let why) = await box.applier().run() else { Issue.record("kept on the old recorder's segments"); return }
        #expect(why.contains("recorded 0 of 2 segments"), "\(why)")
        #expect(box.state.inForce == nil)
    }

    @Test func anInvalidChangeTouchesNothingAndIsNotTriedAgain() async throws {
        let box = try Box(records: true)
        try box.offer(3, "[server]\nurl = \"https://elsewhere.example\"\n")
        guard case .refused(3, let why) = await box.applier().run() else { Issue.record("not refused"); return }
        #expect(why.contains("server.url") && why.contains("the commune may not set this key"))
        #expect(box.restarts.withLock { $0 } == 0, "the recorder was not touched")
        #expect(box.state.inForce == nil && box.state.seen == 3 && box.state.last?.result == .refused)
        // A value the box cannot take is refused the same way, naming the line.
        try box.offer(4, "[upload]\n\nmax_kbps = 99999999\n")
        guard case .refused(4, let why4) = await box.applier().run() else { Issue.record("not refused"); return }
        #expect(why4.contains("revision 4") && why4.contains(":3") && why4.contains("upload.max_kbps"), "\(why4)")
        // The same revision again (a heartbeat that repeats it): not taken up.
        try box.offer(4, "[upload]\nmax_kbps = 5\n")
        guard case .notTaken = await box.applier().run() else { Issue.record("taken twice"); return }
        #expect(box.restarts.withLock { $0 } == 0)
    }

    @Test func aCheckCutShortIsRolledBackAndAPowerCutComesBackWithThePrevious() async throws {
        let box = try Box(records: true)
        var s = SettingsState()
        s.inForce = .init(revision: 1, toml: "[upload]\nmax_kbps = 100\n", baseSHA256: box.baseSHA, at: .now())
        s.trial = .init(settings: .init(revision: 2, toml: "[upload]\nmax_kbps = 200\n", baseSHA256: box.baseSHA, at: .now()), bootID: "boot-1")
        s.seen = 2
        try s.save(path: box.statePath)
        // In the boot of the check the trial is what the daemon reads; in any other, the one in force.
        #expect(s.overlay(baseSHA256: box.baseSHA, bootID: "boot-1")?.revision == 2)
        #expect(s.overlay(baseSHA256: box.baseSHA, bootID: "boot-2")?.revision == 1)
        // The helper run again in the same boot (it was killed): the trial is rolled back first.
        #expect(await box.applier().run() == .nothingOffered)
        #expect(box.state.trial == nil && box.state.inForce?.revision == 1 && box.state.last?.result == .rolledBack)
        #expect(box.restarts.withLock { $0 } == 1, "the daemon goes back to the settings in force")
        // After a power cut: settle at boot says so.
        var cut = s
        let said = cut.settle(baseSHA256: box.baseSHA, bootID: "boot-2")
        #expect(said.count == 1 && cut.trial == nil && cut.inForce?.revision == 1 && cut.last?.result == .rolledBack)
    }

    @Test func anEditOfTheCardsFileSupersedesTheCommunesSettings() async throws {
        let box = try Box(records: true)
        try box.offer(1, "[upload]\nmax_kbps = 256\n")
        #expect(await box.applier().run() == .applied(revision: 1))
        try (Self.base + "\n[log]\nlevel = \"debug\"\n").write(toFile: box.basePath, atomically: true, encoding: .utf8)
        var s = box.state
        #expect(s.overlay(baseSHA256: box.baseSHA, bootID: "boot-1") == nil, "the installer's edited file is in force alone")
        let said = s.settle(baseSHA256: box.baseSHA, bootID: "boot-1")
        #expect(said.count == 1 && said[0].contains("edited"))
        #expect(s.inForce == nil && s.last?.result == .superseded && s.last?.revision == 1 && s.seen == 1)
    }

    @Test func anUnreadableStateIsSetAsideAndTheFileAloneIsInForce() throws {
        let box = try Box(records: true)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: box.statePath))
        #expect(box.state == SettingsState())
        #expect(FileManager.default.fileExists(atPath: box.statePath + ".unreadable"))
        // Over the bound: the same.
        try Data(repeating: 0x20, count: StateFile.maxBytes + 1).write(to: URL(fileURLWithPath: box.statePath))
        #expect(box.state == SettingsState())
    }

    @Test func offersBreakingTheirBoundsAreNotDecoded() throws {
        let ok = try JSONDecoder().decode(RemoteSettings.Offer.self, from: Data(#"{"revision":1,"toml":"[upload]\nmax_kbps = 1"}"#.utf8))
        #expect(ok.revision == 1)
        for bad in [#"{"revision":0,"toml":"x"}"#, #"{"revision":1099511627777,"toml":"x"}"#,
                    #"{"revision":1,"toml":"\#(String(repeating: "x", count: RemoteSettings.maxTOMLBytes + 1))"}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(RemoteSettings.Offer.self, from: Data(bad.utf8)) }
        }
        let atBound = #"{"revision":1099511627776,"toml":"\#(String(repeating: "x", count: RemoteSettings.maxTOMLBytes))"}"#
        #expect(try JSONDecoder().decode(RemoteSettings.Offer.self, from: Data(atBound.utf8)).revision == 1 << 40)
    }
}
