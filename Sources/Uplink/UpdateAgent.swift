import Logging
import Update
import Wire

/// The box's side of a rollout (issue 24): the heartbeat's answer may offer a release; the
/// agent fetches it from the commune by byte range (one request at most `requestBytes`, each
/// resumed where it stopped), only while no flagged footage waits to go up (evidence first)
/// and within its own rate, and hands the opened, signature-checked bundle to `install`, which
/// writes the other slot (block by block, each checked before it is written). It tells the
/// heartbeat how far it got. One download at a time; a version the box lists as failed is not
/// fetched again unless the commune says the operator asked (`Offer.retry`).
public actor UpdateAgent: UpdateChannel {
    public struct Configuration: Sendable {
        public var baseURL: String
        public var token: Secret?
        /// Bytes one ranged request asks for (the transport reads at most 1 MiB of an answer).
        public var requestBytes = 256 << 10
        /// How often the queue of flagged footage is looked at while a download waits for it.
        public var quietPoll: Duration = .seconds(5)
        /// Failed requests in a row before the download gives up until the next offer.
        public var maxFailures = 20
        public var retryPause: Duration = .seconds(5)
        public init(baseURL: String, token: Secret?) {
            self.baseURL = baseURL
            self.token = token
        }
    }

    public typealias Install = @Sendable (UpdateBundle, FleetUpdate.Offer, @escaping SlotWriter.Fetch, @escaping @Sendable (Int) async throws -> Void) async throws -> Void

    let configuration: Configuration
    let transport: any TusTransport
    let keyring: Keyring
    let limiter: RateLimiter?
    /// True while flagged footage waits to go up: the download pauses for it.
    let evidenceWaiting: @Sendable () async -> Bool
    /// Where the box stands (its release, slots, state file), without the download.
    let standing: @Sendable () -> FleetUpdate.Report
    let install: Install
    let logger: Logger
    /// Told the bytes fetched of the offer under way after each request (the root helper writes
    /// them where the daemon's heartbeat reads them).
    public var progress: (@Sendable (String, Int64) -> Void)?
    public func onProgress(_ f: @escaping @Sendable (String, Int64) -> Void) { progress = f }

    var task: Task<Void, Never>?
    var working: FleetUpdate.Offer?
    var fetched: Int64 = 0
    public private(set) var lastProblem: String?
    /// Requests made and bytes fetched since start (the bench reads them).
    public private(set) var requests = 0
    public private(set) var bytesFetched: Int64 = 0

    public init(configuration: Configuration, transport: any TusTransport, keyring: Keyring, limiter: RateLimiter? = nil,
                evidenceWaiting: @escaping @Sendable () async -> Bool, standing: @escaping @Sendable () -> FleetUpdate.Report,
                install: @escaping Install, logger: Logger) {
        self.configuration = configuration
        self.transport = transport
        self.keyring = keyring
        self.limiter = limiter
        self.evidenceWaiting = evidenceWaiting
        self.standing = standing
        self.install = install
        self.logger = logger
    }

    /// The heartbeat's report of updates: where the box stands, and the download under way.
    public func report() -> FleetUpdate.Report {
        var r = standing()
        if let w = working {
            r.downloading = w.version
            r.downloadedBytes = fetched
        }
        return r
    }

    public var busy: Bool { task != nil }

    /// Called with every answered heartbeat's offer (nil: none).
    public func answered(_ offer: FleetUpdate.Offer?) {
        guard let offer, task == nil, Self.wanted(offer, standing: standing()) else { return }
        working = offer
        fetched = 0
        task = Task { await self.run(offer) }
    }

    /// Whether a box standing so takes the offer: its own architecture, not the release it runs
    /// or has pending, and not one that failed here unless the operator asked again.
    public static func wanted(_ offer: FleetUpdate.Offer, standing now: FleetUpdate.Report) -> Bool {
        guard now.canUpdate, offer.arch == now.arch, offer.version != now.release, offer.version != now.pending else { return false }
        return !now.failed.contains(offer.version) || offer.retry == true
    }

    /// Waits for the download under way (tests).
    public func settle() async { await task?.value }

    func run(_ offer: FleetUpdate.Offer) async {
        defer { finish() }
        do {
            let fetch = self.fetcher(offer)
            let bundle = try await UpdateBundle.open(size: offer.bytes, keyring: keyring, read: fetch)
            guard bundle.manifest.version.description == offer.version || ReleaseVersion(offer.version) == bundle.manifest.version,
                  bundle.manifest.arch == offer.arch else {
                throw UpdateError.malformed("the commune offered \(offer.version) for \(offer.arch) but the bundle is \(bundle.manifest.version) for \(bundle.manifest.arch)")
            }
            let pace: @Sendable (Int) async throws -> Void = { [self] bytes in try await self.pace(bytes) }
            try await install(bundle, offer, fetch, pace)
            lastProblem = nil
            logger.notice("update: \(offer.version) installed; it boots next, on trial")
        } catch is CancellationError {
        } catch {
            lastProblem = "\(error)"
            logger.error("update: \(offer.version) not installed", metadata: ["why": "\(error)"])
        }
    }

    func finish() {
        task = nil
        working = nil
    }

    /// Evidence first: wait while flagged footage waits, then within the rate.
    func pace(_ bytes: Int) async throws {
        while await evidenceWaiting() {
            try await Task.sleep(for: configuration.quietPoll)
        }
        try await limiter?.take(bytes)
    }

    func count(_ n: Int) {
        requests += 1
        bytesFetched += Int64(n)
        fetched += Int64(n)
        if let w = working { progress?(w.version, fetched) }
    }

    /// Range requests for the offered bundle, split at `requestBytes`, each retried (bounded)
    /// from where it stopped.
    nonisolated func fetcher(_ offer: FleetUpdate.Offer) -> SlotWriter.Fetch {
        let url = configuration.baseURL + offer.path
        let token = configuration.token
        let piece = configuration.requestBytes
        let maxFailures = configuration.maxFailures
        let pause = configuration.retryPause
        let transport = self.transport
        return { [self] offset, count in
            var out: [UInt8] = []
            out.reserveCapacity(count)
            var failures = 0
            while out.count < count {
                let from = offset + Int64(out.count)
                let n = min(piece, count - out.count)
                var headers = ["Range": "bytes=\(from)-\(from + Int64(n) - 1)"]
                if let token { headers["Authorization"] = "Bearer " + token.reveal() }
                do {
                    let r = try await transport.perform(TusRequest(method: "GET", url: url, headers: headers))
                    let range = r.headers.first { $0.key.lowercased() == "content-range" }?.value ?? ""
                    guard r.status == 206, range.hasPrefix("bytes \(from)-"), !r.body.isEmpty, r.body.count <= n else {
                        if r.status == 401 || r.status == 403 || r.status == 404 || r.status == 416 {
                            throw UpdateError.io("the commune answered HTTP \(r.status) for \(offer.path)")
                        }
                        throw UpdateError.io("the commune answered HTTP \(r.status) (\(range.prefix(60))) for a range")
                    }
                    out += r.body
                    await self.count(r.body.count)
                    failures = 0
                } catch let e as UpdateError where e.kind == "io" && e.description.contains("HTTP 4") {
                    throw e
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    failures += 1
                    if failures >= maxFailures { throw UpdateError.io("the download failed \(failures) times in a row: \(error)") }
                    try await Task.sleep(for: pause)
                }
            }
            return out
        }
    }
}
