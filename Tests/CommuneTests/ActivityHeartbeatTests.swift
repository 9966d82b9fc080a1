import Activity
import Foundation
import Logging
import Testing
import Wire
@testable import Commune
@testable import Ring
@testable import Uplink

/// Activity over the heartbeat (issue 14): the box sends a byte a minute from where the commune
/// left off, the commune keeps the minutes it is told about and says where to go on from; what
/// breaks the rules is not kept and does not cost the heartbeat.
@Suite struct ActivityHeartbeatTests {
    func box(_ server: RunningServer) async throws -> (Ring, HeartbeatService) {
        let token = try await server.catalog.addDevice(id: "thaithuy-0042")
        let ring = try await Ring.open(.init(root: NSTemporaryDirectory() + "box-" + UUID().uuidString, budget: .bytes(1 << 30), reserveBytes: 0),
                                       logger: Logger(label: "t"))
        let configuration = HeartbeatService.Configuration(url: server.url + Heartbeat.path, token: Secret(token), device: "thaithuy-0042", camera: "cam1")
        let service = HeartbeatService(configuration: configuration, transport: HTTPTransport(), ring: ring, version: "test",
                                       logger: Logger(label: "t")) { ("recording", nil, true, true) }
        return (ring, service)
    }

    /// A 60-s segment starting at `start` with movement `score` at each of `moments` seconds in.
    func segment(_ ring: Ring, at start: Timestamp, moments: [Int], score: UInt8) async throws {
        let o = SegmentOrigin(camera: "cam1", start: start, monotonicNanos: 0, bootID: "b", clockSynchronized: true, codec: "h264")
        let path = try ring.prepareSegmentPath(for: o)
        let bytes = (0..<2_000).map { _ in UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var summary = ActivitySummary()
        for s in stride(from: 0, to: 60, by: 2) {
            summary.entries.append(.init(deciseconds: UInt16(s * 10), score: moments.contains(s) ? score : 0))
        }
        let pending = PendingActivity()
        pending.complete(SegmentActivity(summary: summary))
        _ = try await ring.commit(FinishedSegment(path: path, origin: o, bytes: Int64(bytes.count), sha256: sha256Hex(bytes), durationSeconds: 60,
                                                  activity: pending))
    }

    @Test func theCommuneLearnsWhenSomethingMovedAMinuteAtATime() async throws {
        let server = try await RunningServer.start()
        defer { Task { await server.stop() } }
        let (ring, service) = try await box(server)
        let now = Timestamp.now()
        let hour = Timestamp(milliseconds: now.milliseconds / 60_000 * 60_000) - 3600
        // An hour ago: a still minute, a minute with movement at 10 s and 20 s, then nothing recorded.
        try await segment(ring, at: hour, moments: [], score: 0)
        try await segment(ring, at: hour + 60, moments: [10, 20], score: 90)
        var known = HeartbeatService.Known()
        #expect(await service.beat(&known, now: now) == .answered(newRequests: 0))
        let kept = try await server.catalog.activity(device: "thaithuy-0042", from: hour - 60, to: now)
        #expect(kept.map(\.minute) == [hour, hour + 60] && kept.map(\.level) == [0, 90], "\(kept)")
        #expect(known.activityFrom == hour + 60, "the commune goes on from its newest minute")

        // The next report starts there: a minute or two, not the day.
        let next = try #require(try await service.activity(from: known.activityFrom, now: now))
        #expect(next.from == hour + 60 && next.decoded?.count == 60 && next.decoded?.first == 90, "from that minute through the one now")
        let first = try #require(try await service.activity(from: nil, now: now))
        #expect(first.decoded?.count == Heartbeat.ActivityMinutes.maxMinutes, "a box not heard from sends its last day")
        await ring.close()
    }

    @Test func activityThatBreaksTheRulesIsNotKept() async throws {
        let server = try await RunningServer.start()
        defer { Task { await server.stop() } }
        _ = try await server.catalog.addDevice(id: "box-a")
        let t = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!
        let now = t + 3600
        let day = Heartbeat.ActivityMinutes(from: t - 86_400 + 3600, levels: [UInt8](repeating: 5, count: 1440))
        #expect(try await server.catalog.addActivity(device: "box-a", day, now: now) == 1440, "a day at the bound is kept")
        var bad = Heartbeat.ActivityMinutes(from: t, levels: [UInt8](repeating: 5, count: 1441))
        #expect(try await server.catalog.addActivity(device: "box-a", bad, now: now) == nil)
        bad = Heartbeat.ActivityMinutes(from: t + 0.5, levels: [7])
        #expect(try await server.catalog.addActivity(device: "box-a", bad, now: now) == nil)
        bad.from = t
        bad.levels = "0g"
        #expect(try await server.catalog.addActivity(device: "box-a", bad, now: now) == nil)
        let unknown = Heartbeat.ActivityMinutes(from: t, levels: [255, 255])
        #expect(try await server.catalog.addActivity(device: "box-a", unknown, now: now) == 0, "minutes nothing is known of are not kept")
        #expect(try await server.catalog.activity(device: "box-a", from: t - 86_400, to: now).count == 1440)
        // Over the wire: a heartbeat whose activity breaks the rules is still answered.
        let token = try await server.catalog.addDevice(id: "box-b")
        var report = Heartbeat.Report(device: "box-b", health: .init(recording: "recording", oldest: nil, newest: nil, ringBytes: 0, budgetBytes: 1,
                                                                     freeBytes: 1, pinnedBytes: 0, pinnedCapBytes: 1, queuedSegments: 0,
                                                                     clockSynchronized: true, version: "t", sentAt: now))
        report.activity = Heartbeat.ActivityMinutes(from: t + 1, levels: [1, 2])
        let response = try await HTTPTransport().perform(TusRequest(method: "POST", url: server.url + Heartbeat.path,
                                                                   headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                                                                   body: try Heartbeat.encode(report)))
        #expect(response.status == 200)
        #expect(try await server.catalog.activity(device: "box-b", from: t - 60, to: now).isEmpty)
    }

    /// Issue 22: one heartbeat with activity dated 2099 made the commune answer activity_from
    /// 2099 for good, and that box's activity stayed blank. Minutes past the commune's present
    /// are not kept, and the next answer still asks from the box's real newest minute.
    @Test func activityFromTheFutureIsNotKeptAndAsksNothingOfIt() async throws {
        let server = try await RunningServer.start()
        defer { Task { await server.stop() } }
        _ = try await server.catalog.addDevice(id: "box-a")
        let now = Timestamp(rfc3339: "2026-12-03T10:00:30Z")!
        let minute = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!
        #expect(try await server.catalog.addActivity(device: "box-a", .init(from: minute - 120, levels: [1, 2, 3]), now: now) == 3)
        let future = Heartbeat.ActivityMinutes(from: Timestamp(rfc3339: "2099-01-01T00:00:00Z")!, levels: [9, 9, 9])
        #expect(try await server.catalog.addActivity(device: "box-a", future, now: now) == 0)
        let straddling = Heartbeat.ActivityMinutes(from: minute, levels: [4, 5, 6])
        #expect(try await server.catalog.addActivity(device: "box-a", straddling, now: now) == 1, "the present minute, not the two after it")
        #expect(try await server.catalog.activityFrom(device: "box-a", now: now) == minute)
        // A row stored before this bound no longer decides where the box goes on from.
        _ = try await server.catalog.query("INSERT INTO activity_minute (device, minute_ms, level) VALUES ('box-a', ?, 1)",
                                           [.integer(Int(Timestamp(rfc3339: "2099-01-01T00:00:00Z")!.milliseconds))])
        #expect(try await server.catalog.activityFrom(device: "box-a", now: now) == minute)
        _ = try await server.catalog.addActivity(device: "box-a", .init(from: minute, levels: [7]), now: now)
        #expect(try await server.catalog.activity(device: "box-a", from: minute, to: Timestamp.latest).map(\.level) == [7], "and it is swept")
    }
}
