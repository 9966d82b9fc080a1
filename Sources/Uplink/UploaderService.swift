import Logging
import Ring
import ServiceLifecycle
import Wire

/// The box's upload service: whenever pinned footage is waiting and the server answers, it
/// drains the upload queue. It asks the server (OPTIONS) which checksum it takes before each
/// round, which doubles as the link probe: while the link is down it probes every
/// `probeInterval`, so uploading resumes within seconds of the link coming back.
public struct UploaderService: Service {
    public let queue: @Sendable (TusUploadStateMachine.ChecksumAlgorithm?) -> UploadQueue
    public let transport: any TusTransport
    public let tusURL: String
    public let probeInterval: Duration
    let logger: Logger

    public init(transport: any TusTransport, tusURL: String, probeInterval: Duration = .seconds(2), logger: Logger,
                queue: @escaping @Sendable (TusUploadStateMachine.ChecksumAlgorithm?) -> UploadQueue) {
        self.transport = transport
        self.tusURL = tusURL
        self.probeInterval = probeInterval
        self.logger = logger
        self.queue = queue
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var linkWasDown = false
            while !Task.isCancelled {
                do {
                    let options = try await transport.perform(TusRequest(method: "OPTIONS", url: tusURL, headers: [Tus.Header.resumable: Tus.version]))
                    if linkWasDown { logger.notice("uplink: server answering again") }
                    linkWasDown = false
                    let algorithm = TusUploadStateMachine.checksum(advertised: options.headers.first { $0.key.lowercased() == "tus-checksum-algorithm" }?.value)
                    let report = try await queue(algorithm).drain(sleep: { try await Task.sleep(for: .milliseconds(Int64($0 * 1000))) })
                    if !report.uploaded.isEmpty {
                        logger.info("uplink: \(report.uploaded.count) segments uploaded")
                    }
                } catch is CancellationError {
                    return
                } catch {
                    if !linkWasDown { logger.warning("uplink: server not reachable (\(error)); retrying every \(probeInterval)") }
                    linkWasDown = true
                }
                try? await Task.sleep(for: probeInterval)
            }
        }
    }
}
