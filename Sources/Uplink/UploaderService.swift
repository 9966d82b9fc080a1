import Logging
import Ring
import ServiceLifecycle
import Wire

/// The box's upload service. It watches the index (locally, every `idleInterval`: no traffic
/// while nothing is flagged) and, as soon as pinned footage waits, asks the server (OPTIONS)
/// which checksum it takes and drains the upload queue. The OPTIONS doubles as the link probe:
/// while the link is down it probes every `probeInterval`, so uploading resumes within seconds
/// of the link coming back.
public struct UploaderService: Service {
    public let queue: @Sendable (TusUploadStateMachine.ChecksumAlgorithm?) -> UploadQueue
    public let transport: any TusTransport
    public let tusURL: String
    public let ring: Ring
    public let probeInterval: Duration
    public let idleInterval: Duration
    public var monitor: UplinkMonitor?
    let logger: Logger

    public init(transport: any TusTransport, tusURL: String, ring: Ring, probeInterval: Duration = .seconds(2),
                idleInterval: Duration = .milliseconds(250), logger: Logger,
                queue: @escaping @Sendable (TusUploadStateMachine.ChecksumAlgorithm?) -> UploadQueue) {
        self.transport = transport
        self.tusURL = tusURL
        self.ring = ring
        self.probeInterval = probeInterval
        self.idleInterval = idleInterval
        self.logger = logger
        self.queue = queue
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var linkWasDown = false
            var known: (algorithm: TusUploadStateMachine.ChecksumAlgorithm?, at: ContinuousClock.Instant)?
            while !Task.isCancelled {
                if (try? await ring.hasPendingUploads()) != true {
                    try? await Task.sleep(for: idleInterval)
                    continue
                }
                do {
                    // The server's checksum choice, asked again only after a minute or a failure:
                    // a flag on a live link goes out without an extra round trip.
                    let algorithm: TusUploadStateMachine.ChecksumAlgorithm?
                    if let known, !linkWasDown, ContinuousClock.now - known.at < .seconds(60) {
                        algorithm = known.algorithm
                    } else {
                        let options = try await transport.perform(TusRequest(method: "OPTIONS", url: tusURL, headers: [Tus.Header.resumable: Tus.version]))
                        algorithm = TusUploadStateMachine.checksum(advertised: options.headers.first { $0.key.lowercased() == "tus-checksum-algorithm" }?.value)
                    }
                    if linkWasDown { logger.notice("uplink: server answering again") }
                    monitor?.update { $0.connected = true; $0.lastContact = .now() }
                    linkWasDown = false
                    let report = try await queue(algorithm).drain(sleep: { try await Task.sleep(for: .milliseconds(Int64($0 * 1000))) })
                    if !report.uploaded.isEmpty {
                        logger.info("uplink: \(report.uploaded.count) segments uploaded")
                    }
                    if report.failed.isEmpty {
                        known = (algorithm, ContinuousClock.now)
                        continue
                    }
                    known = nil
                } catch is CancellationError {
                    return
                } catch {
                    if !linkWasDown { logger.warning("uplink: server not reachable (\(error)); retrying every \(probeInterval)") }
                    monitor?.update(force: !linkWasDown) { $0.connected = false; $0.lastError = "server not reachable: \(error)" }
                    linkWasDown = true
                    known = nil
                }
                try? await Task.sleep(for: probeInterval)
            }
        }
    }
}
