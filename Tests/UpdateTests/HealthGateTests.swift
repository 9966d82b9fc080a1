import Testing
@testable import Update

/// The bless is earned by recording and delivering in this boot (issue 24, item 3).
@Suite struct HealthGateTests {
    let need = HealthGate.Requirement(segments: 3, deadlineSeconds: 600)

    func seen(_ segments: Int, pid: Int32 = 100, boot: String = "this", heartbeat: Bool = true) -> HealthGate.Observation {
        .init(recorderBootID: boot, recorderPID: pid, segmentsWritten: segments, uplinkBootID: boot, heartbeatAccepted: heartbeat)
    }

    @Test func passesAtExactlyTheSegmentsAskedWithAHeartbeat() {
        var gate = HealthGate(requirement: need, bootID: "this")
        gate.observe(seen(2))
        #expect(gate.verdict(elapsedSeconds: 100) == .waiting("recorded 2 of 3 segments"))
        gate.observe(seen(3))
        #expect(gate.verdict(elapsedSeconds: 100) == .passed)
    }

    @Test func recordingWithoutReachingTheCommuneIsNotHealthy() {
        var gate = HealthGate(requirement: need, bootID: "this")
        gate.observe(seen(50, heartbeat: false))
        #expect(gate.verdict(elapsedSeconds: 599.9) == .waiting("no heartbeat accepted by the commune"))
        #expect(gate.verdict(elapsedSeconds: 600) == .failed("no heartbeat accepted by the commune within 600 s of boot"))
    }

    /// status.json and uplink.json live on the data partition: the good old release's files,
    /// left from before the reboot, must not bless the new one.
    @Test func filesFromAnotherBootCountForNothing() {
        var gate = HealthGate(requirement: need, bootID: "this")
        gate.observe(seen(500, boot: "before"))
        #expect(gate.segments == 0 && !gate.heartbeatSeen)
        #expect(gate.verdict(elapsedSeconds: 600) == .failed("recorded 0 of 3 segments, no heartbeat accepted by the commune within 600 s of boot"))
    }

    /// A daemon that crashes and is restarted by systemd starts its count again: the gate adds
    /// the runs up, and a run seen twice is not counted twice.
    @Test func restartsOfTheDaemonAddUp() {
        var gate = HealthGate(requirement: need, bootID: "this")
        gate.observe(seen(1, pid: 10))
        gate.observe(seen(1, pid: 10))
        gate.observe(seen(0, pid: 11))
        gate.observe(seen(1, pid: 11))
        #expect(gate.segments == 2)
        #expect(gate.verdict(elapsedSeconds: 1) == .waiting("recorded 2 of 3 segments"))
        gate.observe(seen(1, pid: 12))
        #expect(gate.verdict(elapsedSeconds: 1) == .passed)
    }

    @Test func hostileCountsNeitherWrapNorGoNegative() {
        var gate = HealthGate(requirement: need, bootID: "this")
        gate.observe(seen(Int.max, pid: 1))
        gate.observe(seen(Int.max, pid: 2))
        #expect(gate.segments == Int.max)
        var other = HealthGate(requirement: need, bootID: "this")
        other.observe(seen(-5, pid: 1, heartbeat: false))
        #expect(other.segments == 0)
        other.observe(.init())
        #expect(other.segments == 0 && !other.heartbeatSeen)
    }

    /// The reason the gate gave in the failed boots is what the old slot reports.
    @Test func theFailedCheckIsTheReasonOfTheRollback() async throws {
        let r = try Release.make(version: "1.3.0")
        let card = try Card.make(running: r.rootfs)
        _ = try await Installer.install(try await r.open(), fetch: Served(r.bytes).fetch, layout: card.layout, box: card.box(), statePath: card.statePath)
        var gate = HealthGate(requirement: need, bootID: "boot-2")
        gate.observe(seen(1, boot: "boot-2", heartbeat: false))
        guard case .failed(let why) = gate.verdict(elapsedSeconds: 601) else { Issue.record("not failed"); return }
        for _ in 0..<4 {
            if try card.boot() == "b" { try Installer.recordProblem(why, statePath: card.statePath) }
        }
        let settled = try Installer.settle(box: card.box(bootID: "boot-5"), layout: card.layout, statePath: card.statePath)
        #expect(settled == .rolledBack(ReleaseVersion("1.3.0")!, reason: "recorded 1 of 3 segments, no heartbeat accepted by the commune within 600 s of boot"))
        #expect(UpdateState.load(path: card.statePath).last?.reason == why)
    }
}
