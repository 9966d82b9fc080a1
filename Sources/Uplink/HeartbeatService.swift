import Activity
import Logging
import Evidence
import Ring
import ServiceLifecycle
import Wire

/// The box's side of the control channel. Every `interval` it posts its health and the coverage
/// of each open footage request to the commune (`POST /api/v1/heartbeat`); each new request in
/// the answer becomes a flag at once, and its coverage goes back in an immediate second
/// heartbeat. While the server cannot be reached it retries every `retryInterval`, so the first
/// heartbeat after the link returns goes out within seconds. A server without the endpoint (a
/// plain tus server) is noted once: uploads still work, requests just never arrive.
public struct HeartbeatService: Service {
    public struct Configuration: Sendable {
        public var url: String
        public var token: Secret?
        public var device: String
        /// The camera a request without one means.
        public var camera: String
        public var interval: Duration = .seconds(60)
        public var retryInterval: Duration = .seconds(2)
        /// The box's public key (base64): with it each heartbeat carries the chain head for the
        /// commune to countersign (issue 13).
        public var publicKey: String?
        /// Each request taken asks for a preview (issue 14: `upload.preview`).
        public var previews = true
        /// The commune's key (`server.commune_key`); nil: the first countersignature pins it.
        public var communeKey: String?

        public init(url: String, token: Secret?, device: String, camera: String) {
            self.url = url
            self.token = token
            self.device = device
            self.camera = camera
        }
    }

    let configuration: Configuration
    let transport: any TusTransport
    let ring: Ring
    /// The recorder's state now: what to call it, its last error, whether it is recording.
    let recorder: @Sendable () -> (state: String, lastError: String?, recording: Bool, clockSynchronized: Bool)
    let version: String
    public var monitor: UplinkMonitor?
    /// Fleet updates (issue 24): the report each heartbeat carries, and the answer's offer.
    public var updates: (any UpdateChannel)?
    /// The commune's settings (issue 24, item 7): where the box stands, and the answer's change.
    public var settings: (any SettingsChannel)?
    /// Where the box stands (release, slots, last update) when no agent downloads for it: the
    /// commune's desk and its rollouts see every box's release either way.
    public var standing: (@Sendable () -> FleetUpdate.Report)?
    let logger: Logger

    public init(configuration: Configuration, transport: any TusTransport, ring: Ring, version: String, logger: Logger,
                recorder: @escaping @Sendable () -> (state: String, lastError: String?, recording: Bool, clockSynchronized: Bool)) {
        self.configuration = configuration
        self.transport = transport
        self.ring = ring
        self.version = version
        self.logger = logger
        self.recorder = recorder
    }

    /// What the last answer said that the next heartbeat acts on.
    public struct Known: Sendable, Equatable {
        /// The requests of the last answer (their coverage goes in the next report).
        public var requests: [FootageRequest] = []
        /// The chain records the commune asked for (issue 13): the next report carries them.
        public var chainWanted: Heartbeat.ChainRange?
        /// Records the last report carried (a commune still wanting more gets them at once).
        public var chainSent = 0
        /// The minute the commune wants activity from (issue 14); nil: the last day.
        public var activityFrom: Timestamp?
        /// The commune kept the records the last report carried and wants the next ones: its
        /// `chain_wanted` moved on (a commune asking for the same records again, or for more than
        /// this box has, is answered at the heartbeat's own cadence: issue 22).
        public var chainProgressed = false
        /// The last pause was a quick follow-up for new requests.
        public var followedUp = false

        public init() {}

        /// How long to wait before the next heartbeat. New requests were just flagged: their
        /// coverage goes at once, but never twice in a row (a commune that names new requests in
        /// every answer still gets one heartbeat an interval: issue 22). The commune kept the
        /// chain records sent and wants the next: they go in a second (bounded by the box's own
        /// chain: each follow-up must move past what was sent). Unreachable: retry soon.
        public mutating func pause(after outcome: Outcome, interval: Duration, retry: Duration) -> Duration {
            defer { if case .answered(let fresh) = outcome, fresh > 0, !followedUp { followedUp = true } else { followedUp = false } }
            switch outcome {
            case .answered(let fresh) where fresh > 0 && !followedUp: return .milliseconds(200)
            case .answered where chainProgressed: return min(.seconds(1), interval)
            case .answered, .refused: return interval
            case .unreachable: return retry
            }
        }
    }

    /// New requests one answer may turn into flags; the rest wait for the next heartbeat, so a
    /// commune that sends many at once cannot hold the heartbeat up (issue 22).
    public static let maxNewRequestsPerBeat = 20

    public enum Outcome: Sendable, Equatable {
        /// The server answered; `newRequests` of its requests were not known before.
        case answered(newRequests: Int)
        /// The server has no heartbeat endpoint, or refused the token: try again later.
        case refused(String)
        /// No answer: the link or the server is down.
        case unreachable(String)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var known = Known()
            var lastProblem: String?
            while !Task.isCancelled {
                let outcome = await beat(&known)
                if Task.isCancelled { return }
                let pause = known.pause(after: outcome, interval: configuration.interval, retry: configuration.retryInterval)
                switch outcome {
                case .answered:
                    monitor?.update { $0.lastHeartbeat = .now(); $0.lastContact = .now(); $0.connected = true }
                    if lastProblem != nil { logger.notice("heartbeat: the commune answers again") }
                    lastProblem = nil
                case .refused(let why):
                    if lastProblem != why { logger.warning("heartbeat: \(why)") }
                    lastProblem = why
                case .unreachable(let why):
                    if lastProblem == nil { logger.warning("heartbeat: the commune cannot be reached (\(why)); retrying every \(configuration.retryInterval)") }
                    lastProblem = lastProblem ?? why
                }
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// One heartbeat: report, read the answer, flag new requests. `known` is what the last
    /// answer said (its requests' coverage and the chain records it wanted go in this report).
    public func beat(_ known: inout Known, now: Timestamp = .now()) async -> Outcome {
        let report: Heartbeat.Report
        let body: [UInt8]
        do {
            var made = try await makeReport(known.requests, now: now)
            made.activity = try await activity(from: known.activityFrom, now: now)
            (report, body) = try await fitted(made, wanted: known.chainWanted)
        } catch {
            return .refused("cannot read the ring to report: \(error)")
        }
        known.chainSent = report.chain?.count ?? 0
        var headers = ["Content-Type": "application/json"]
        if let token = configuration.token { headers["Authorization"] = "Bearer " + token.reveal() }
        let response: TusResponse
        do {
            response = try await transport.perform(TusRequest(method: "POST", url: configuration.url, headers: headers, body: body))
        } catch {
            return .unreachable(String(describing: error))
        }
        switch response.status {
        case 200:
            break
        case 401, 403:
            return .refused("the commune refused the token (HTTP \(response.status)): check server.token against `commune devices`")
        case 404, 405:
            return .refused("\(configuration.url) has no heartbeat endpoint (not a commune server?): uploads still work, footage requests will not arrive")
        default:
            return .refused("the commune answered HTTP \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))")
        }
        let reply: Heartbeat.Reply
        do { reply = try Heartbeat.decode(Heartbeat.Reply.self, from: response.body) } catch {
            let why = (error as? DecodingError)?.plain ?? "not JSON"
            return .refused("the commune's answer is not the JSON expected (\(TerminalText.safe(why, limit: 300)))")
        }
        if let problem = reply.keyProblem {
            logger.error("evidence: the commune refused this box's key", metadata: ["why": "\(TerminalText.safe(String(problem.prefix(300))))"])
        }
        if let c = reply.countersign, let head = report.evidence {
            do { try await ring.keep(c, sent: head, device: configuration.device, pinned: configuration.communeKey) } catch {
                logger.error("evidence: countersignature not kept", metadata: ["error": "\(error)"])
            }
        }
        if let b = reply.keyBinding, let head = report.evidence {
            do { try await ring.keep(b, device: configuration.device, deviceKey: head.publicKey, pinned: configuration.communeKey) } catch {
                logger.error("evidence: the commune's key binding not kept", metadata: ["error": "\(error)"])
            }
        }
        let before = Set(known.requests.map(\.id))
        let sentAfter = report.chain?.isEmpty == false ? known.chainWanted?.after : nil
        known.chainWanted = reply.chainWanted
        known.chainProgressed = sentAfter.map { sent in reply.chainWanted.map { $0.after > sent } ?? false } ?? false
        known.activityFrom = reply.activityFrom
        var fresh = 0, taken: [FootageRequest] = []
        for request in reply.requests {
            let isNew = !before.contains(request.id)
            if isNew {
                // Past the bound a new request is left for the next answer (it stays new).
                guard fresh < Self.maxNewRequestsPerBeat else { continue }
                fresh += 1
            }
            await take(request, now: now, firstSight: isNew)
            taken.append(request)
        }
        known.requests = taken
        await updates?.answered(reply.update)
        await settings?.answered(reply.settings)
        return .answered(newRequests: fresh)
    }

    /// Flags a request that has no flag yet (one refused at the pin cap is tried again at each
    /// heartbeat) and asks for its preview. A request the commune has narrowed (the officer
    /// saw the preview) narrows its flag: what it no longer covers leaves the upload queue. A
    /// range the ring no longer has, or never had, is not an error: the coverage says so.
    func take(_ request: FootageRequest, now: Timestamp, firstSight: Bool) async {
        do {
            if let flag = try await ring.flag(requestID: request.id) {
                if flag.state != .released, request.from != flag.from || request.to != flag.to {
                    do {
                        _ = try await ring.narrow(flagID: flag.id, from: request.from, to: request.to)
                        logger.notice("footage request narrowed", metadata: ["request": "\(request.id)", "from": "\(request.from)", "to": "\(request.to)"])
                    } catch where error.code == .invalidArgument {
                        if firstSight { logger.warning("footage request: \(error.message); the flag keeps its range", metadata: ["request": "\(request.id)"]) }
                    }
                }
                if configuration.previews, flag.state != .released { try await ring.wantPreview(flagID: flag.id, requestID: request.id, now: now) }
                return
            }
            let flag = try await ring.flag(.init(camera: request.camera ?? configuration.camera, from: request.from, to: request.to,
                                                 reason: request.reason, source: .request, requestID: request.id), now: now)
            if configuration.previews { try await ring.wantPreview(flagID: flag.id, requestID: request.id, now: now) }
            logger.notice("footage request taken", metadata: ["request": "\(request.id)", "from": "\(request.from)", "to": "\(request.to)"])
        } catch where error.code == .invalidArgument {
            if firstSight { logger.notice("footage request: \(error.message)", metadata: ["request": "\(request.id)"]) }
        } catch {
            if firstSight { logger.error("footage request not taken: \(error)", metadata: ["request": "\(request.id)"]) }
        }
    }

    /// The report with the chain records the commune wants, from the first it asked for and
    /// only then (a box that lacks that one sends none: the commune's copy shows the hole), as
    /// many as fit the commune's bounds; and its encoded body.
    func fitted(_ report: Heartbeat.Report, wanted: Heartbeat.ChainRange?) async throws -> (Heartbeat.Report, [UInt8]) {
        var report = report
        // Only records this box has (a `through` of 2^53 asks for no more than its head).
        if let wanted, wanted.through > wanted.after, wanted.after >= 0, let head = try await ring.chainHead()?.seq, head > wanted.after {
            let limit = Int(min(Int64(Heartbeat.Limits.maxChainRecords), min(wanted.through, head) - wanted.after))
            let records = try await ring.chain(after: wanted.after, limit: limit)
            if records.first?.record?.seq == wanted.after + 1 {
                report.chain = records
            }
        }
        var body = try Heartbeat.encode(report)
        while body.count > Heartbeat.Limits.maxBodyBytes, let chain = report.chain, !chain.isEmpty {
            report.chain = chain.count == 1 ? nil : Array(chain.prefix(chain.count / 2))
            body = try Heartbeat.encode(report)
        }
        return (report, body)
    }

    /// The camera's activity a byte a minute from `from` (a day back at most, and by default)
    /// to now; nil when none of it is known (the activity index is off, or nothing recorded).
    func activity(from: Timestamp?, now: Timestamp) async throws -> Heartbeat.ActivityMinutes? {
        let day = Int64(Heartbeat.ActivityMinutes.maxMinutes) * 60_000
        let end = now.milliseconds / 60_000 * 60_000 + 60_000
        let start = max(from.map { $0.milliseconds / 60_000 * 60_000 } ?? 0, end - day)
        guard end > start else { return nil }
        let first = Timestamp(milliseconds: start)
        let covered = try await ring.activity(camera: configuration.camera, from: first, to: Timestamp(milliseconds: end))
            .map { ActivityTimeline.Covered(start: $0.start, end: $0.end, summary: $0.summary) }
        guard !covered.isEmpty else { return nil }
        let levels = ActivityTimeline.minutes(from: first, count: Int((end - start) / 60_000), segments: covered)
        return Heartbeat.ActivityMinutes(from: first, levels: levels)
    }

    func makeReport(_ known: [FootageRequest], now: Timestamp) async throws -> Heartbeat.Report {
        let r = recorder()
        let usage = try await ring.usage()
        let queued = try await ring.uploadQueue(limit: 10_000).count
        let camera = configuration.camera
        let span = try await ring.span(camera: camera)
        let damaged = (try? await ring.quarantined().count) ?? 0
        let health = Heartbeat.Health(recording: r.state, lastError: r.lastError.map { String($0.prefix(Heartbeat.Limits.maxTextCharacters)) }, oldest: span?.oldest, newest: span?.newest,
                                      ringBytes: usage.ringBytes, budgetBytes: usage.budgetBytes, freeBytes: usage.freeBytes,
                                      pinnedBytes: usage.pinnedBytes, pinnedCapBytes: usage.pinnedCapBytes, queuedSegments: queued,
                                      clockSynchronized: r.clockSynchronized, version: version, sentAt: now,
                                      damagedSegments: damaged > 0 ? damaged : nil, camera: camera,
                                      heartbeatSeconds: Int(configuration.interval.components.seconds),
                                      uploadBytesPerSecond: (monitor?.health.current?.bytesPerSecond).map(Bounds.clamp(rate:)))
        var reports: [Heartbeat.RequestReport] = []
        // Within the commune's bounds (Heartbeat.Limits): the first requests, coarsened coverage.
        for request in known.prefix(Heartbeat.Limits.maxRequests) {
            let coverage = Coverage.coarsened(try await ring.coverage(camera: request.camera ?? camera, from: request.from, to: request.to,
                                                   recording: r.recording, now: now))
            var refusal: String?
            if try await ring.flag(requestID: request.id) == nil, coverage.contains(where: { $0.status == .pending }) {
                // Pending parts but no flag: the flag was refused (pin cap); say so to the operator.
                refusal = "the box could not pin this range: its pinned footage is at the cap (storage.max_pinned_percent); it is retried at each heartbeat"
            }
            reports.append(.init(id: request.id, coverage: coverage, error: refusal))
        }
        var evidence: Heartbeat.ChainHead?
        if let key = configuration.publicKey {
            let head = try await ring.chainHead()
            evidence = .init(publicKey: key, seq: head?.seq, hash: head?.hash)
        }
        return Heartbeat.Report(device: configuration.device, health: health, requests: reports, evidence: evidence, update: await updates?.report() ?? standing?(),
                                settings: await settings?.report())
    }
}
