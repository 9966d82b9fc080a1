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
    /// What the server said it can do (OPTIONS).
    public struct Capabilities: Sendable, Equatable {
        public var checksum: TusUploadStateMachine.ChecksumAlgorithm?
        public var creationWithUpload: Bool

        public init(checksum: TusUploadStateMachine.ChecksumAlgorithm?, creationWithUpload: Bool) {
            self.checksum = checksum
            self.creationWithUpload = creationWithUpload
        }

        init(_ options: TusResponse) {
            func header(_ name: String) -> String? { options.headers.first { $0.key.lowercased() == name }?.value }
            checksum = TusUploadStateMachine.checksum(advertised: header("tus-checksum-algorithm"))
            creationWithUpload = (header("tus-extension") ?? "").split(separator: ",")
                .contains { $0.filter { !$0.isWhitespace } == "creation-with-upload" }
        }
    }

    public let queue: @Sendable (Capabilities) -> UploadQueue
    public let transport: any TusTransport
    public let tusURL: String
    public let ring: Ring
    public let probeInterval: Duration
    public let idleInterval: Duration
    public var monitor: UplinkMonitor?
    let logger: Logger

    public init(transport: any TusTransport, tusURL: String, ring: Ring, probeInterval: Duration = .seconds(2),
                idleInterval: Duration = .milliseconds(250), logger: Logger,
                queue: @escaping @Sendable (Capabilities) -> UploadQueue) {
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
            var known: (capabilities: Capabilities, at: ContinuousClock.Instant)?
            while !Task.isCancelled {
                if (try? await ring.hasPendingUploads()) != true, (try? await ring.hasPendingPreviews()) != true {
                    try? await Task.sleep(for: idleInterval)
                    continue
                }
                do {
                    // The server's checksum choice, asked again only after a minute or a failure:
                    // a flag on a live link goes out without an extra round trip.
                    let capabilities: Capabilities
                    if let known, !linkWasDown, ContinuousClock.now - known.at < .seconds(60) {
                        capabilities = known.capabilities
                    } else {
                        capabilities = Capabilities(try await transport.perform(TusRequest(method: "OPTIONS", url: tusURL,
                                                                                        headers: [Tus.Header.resumable: Tus.version])))
                    }
                    if linkWasDown { logger.notice("uplink: server answering again") }
                    monitor?.update { $0.connected = true; $0.lastContact = .now() }
                    linkWasDown = false
                    let report = try await queue(capabilities).drain(sleep: { try await Task.sleep(for: .milliseconds(Int64($0 * 1000))) })
                    if !report.uploaded.isEmpty {
                        logger.info("uplink: \(report.uploaded.count) segments uploaded")
                    }
                    if report.failed.isEmpty {
                        known = (capabilities, ContinuousClock.now)
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
