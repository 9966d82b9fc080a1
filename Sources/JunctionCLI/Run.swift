import Evidence
import ArgumentParser
import Config
import Wire
#if canImport(Glibc)
import Glibc
#endif
import CJunctionSys
import Control
import Logging
import NIOPosix
import Media
import Recorder
import Ring
import Uplink
import ServiceLifecycle
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension JunctionCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the recorder daemon (systemd starts this; logs go to stdout).",
            discussion: "Example:\n  junction run --config /etc/junction/junction.toml")

        @OptionGroup var options: BoxOptions

        func run() async throws {
            // One malloc arena for the daemon, where glibc gives each thread its own with its
            // own dirty pages: about 1.2 MB less private memory, measured, on a board that may
            // have 512 MB; its threads are mostly waiting and hardly contend for malloc.
            _ = csys_single_malloc_arena()
            let config = try options.load()
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardOutput(label: label)
                h.logLevel = Logger.Level(rawValue: config.log.level) ?? .info
                return h
            }
            let logger = Logger(label: "junction")
            logger.info("junction \(JunctionVersion.current) starting", metadata: [
                "device": "\(config.device.id)", "camera": "\(config.camera.redactedURL)", "storage": "\(config.storage.path)",
            ])
            let ring = try await Self.openRecovering(config, logger: logger)
            // Evidence: every segment and gap from now on is sealed with the box's key, and so are
            // files a power cut left unsealed, which recovery finds next. A key
            // that cannot be read or made does not stop recording: footage goes on unsealed and
            // junction doctor says so.
            var publicKey: String?
            if !config.storage.seal {
                logger.warning("evidence: storage.seal = false: segments are recorded UNSEALED")
            } else { do {
                let (key, created) = try DeviceKey.loadOrCreate(path: config.deviceKeyPath)
                publicKey = key.publicKeyBase64
                try key.writePublic(to: config.devicePublicKeyPath)
                if created { logger.notice("evidence: made this box's device key", metadata: ["fingerprint": "\(key.fingerprint)"]) }
                await ring.startSealing(key: key, device: config.device.id, software: BoxFacts.software)
            } catch {
                logger.critical("evidence: no device key, segments are recorded UNSEALED", metadata: ["error": "\(error)"])
            } }
            let findings = try await ring.recover()
            if !findings.isEmpty { logger.notice("recovery: \(findings.count) repairs, see above") }
            try await ring.enforceRetention()

            let input = config.cameraInputOptions
            let clock = SystemClock()
            let capture = CameraCapture(configuration: .init(input: input, cameraID: config.camera.id,
                                                             segmentSeconds: config.storage.segmentSeconds,
                                                             syncFragments: config.storage.syncFragments,
                                                             ringSeals: await ring.isSealing,
                                                             activity: config.activity.enabled,
                                                             activityStream: config.activityInputOptions),
                                        ring: ring, clock: clock)
            var recorderConfig = RecorderService.Configuration(device: config.device.id, cameraID: config.camera.id,
                                                               cameraURL: config.camera.redactedURL, statusPath: config.statusPath)
            recorderConfig.notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
            recorderConfig.stallSeconds = Double(config.camera.stallSeconds) + 2
            if config.motion.enabled, let local = LocalTime(identifier: config.device.timeZone) {
                recorderConfig.motion = (config.motion.rules, local)
            }
            let recorder = RecorderService(
                configuration: recorderConfig,
                ring: ring, runner: capture, clock: clock, probe: TCPProbe(url: config.camera.url), logger: logger)
            var uplinkTransport: HTTPTransport?
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                // Named, so ServiceLifecycle's debug lines print a name and not the service's
                // fields (the camera URL with its password, the token).
                .init(service: recorder, serviceName: "recorder"),
                .init(service: ControlService(path: config.controlSocketPath, ring: ring, logger: logger), serviceName: "control"),
            ]
            if let server = config.server {
                let queueLogger = logger
                let device = config.device.id
                let limiter = config.upload.maxKbps > 0 ? RateLimiter(kbps: config.upload.maxKbps) : nil
                let transport = HTTPTransport(client: try HTTPTransport.makeClient(caFile: server.caFile), limiter: limiter)
                uplinkTransport = transport
                let newestFirst = config.upload.order == .newestFirst
                let monitor = UplinkMonitor(server: server.url, path: config.uplinkStatusPath, bootID: SystemClock().bootID)
                let options = PreviewMaker.Options(width: config.upload.previewWidth, everySeconds: Double(config.upload.previewSeconds))
                let previewMaker: UploadQueue.PreviewMaking = { segments, from, to in
                    let made = try? await NIOThreadPool.singleton.runIfActive {
                        PreviewMaker.pictures(of: segments.map { .init(path: $0.path, start: $0.start) }, from: from, to: to, options: options)
                    }
                    for s in made?.skipped ?? [] { queueLogger.warning("uplink: preview: skipped \(s)") }
                    return made?.pictures ?? []
                }
                var uploader = UploaderService(transport: transport, tusURL: server.tusURL, ring: ring, logger: logger) { server_ in
                    var tus = TusUploadStateMachine.Configuration()
                    tus.creationWithUpload = server_.creationWithUpload
                    var queue = UploadQueue(ring: ring, client: TusClient(transport: transport, collectionURL: server.tusURL, token: server.token),
                                            device: device, checksum: server_.checksum, configuration: tus, newestFirst: newestFirst,
                                            logger: queueLogger)
                    queue.monitor = monitor
                    if config.upload.preview { queue.makePreview = previewMaker }
                    return queue
                }
                uploader.monitor = monitor
                services.append(.init(service: uploader, serviceName: "uploader"))
                var heartbeat = HeartbeatService.Configuration(url: server.url + Heartbeat.path, token: server.token,
                                                               device: device, camera: config.camera.id)
                heartbeat.interval = .seconds(server.heartbeatSeconds)
                heartbeat.publicKey = publicKey
                heartbeat.communeKey = server.communeKey
                heartbeat.previews = config.upload.preview
                var heartbeatService = HeartbeatService(configuration: heartbeat, transport: HTTPTransport(client: transport.client),
                                                        ring: ring, version: JunctionVersion.current, logger: logger) {
                    let h = recorder.health
                    return (h.state.rawValue, h.lastError, h.state == .recording, h.clockSynchronized)
                }
                heartbeatService.monitor = monitor
                let storagePath = config.storage.path
                heartbeatService.standing = { BoxFacts.standing(storage: storagePath) }
                // Offers go to the root helper (junction-update.path): this daemon cannot write a slot.
                heartbeatService.updates = UpdateHandoff(offerPath: UpdateHandoff.offerPath(storage: storagePath),
                                                         progressPath: UpdateProgress.path(storage: storagePath),
                                                         standing: { BoxFacts.standing(storage: storagePath) }, logger: logger)
                // Settings from the commune go the same way (junction-settings.path).
                heartbeatService.settings = SettingsHandoff(storage: storagePath, logger: logger)
                services.append(.init(service: heartbeatService, serviceName: "heartbeat"))
            } else {
                logger.notice("no [server] in the config: flagged footage stays pinned on the card")
            }
            let group = ServiceGroup(configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            do {
                try await group.run()
            } catch {
                try? await uplinkTransport?.client.shutdown()
                await ring.close()
                throw error
            }
            try? await uplinkTransport?.client.shutdown()
            await ring.close()
        }

        /// Opens the ring; an index that is corrupt (cannot be opened, or fails SQLite's
        /// integrity check) does not stop the box: it is moved aside, rebuilt from the files, and
        /// flags come back from the journal. Recording starts either way, and the log says so.
        static func openRecovering(_ config: JunctionConfiguration, logger: Logger) async throws -> Ring {
            let (ring, replaced) = try await config.openReplacingCorruptIndex(logger: logger, checkIntegrity: true)
            guard let replaced else { return ring }
            logger.critical("the index is corrupt: moved aside and rebuilding it from the segment files", metadata: [
                "problem": "\(replaced.problem)", "kept_as": "\(replaced.keptAs)"])
            let (count, findings) = try await ring.reindex()
            let flags = (try? await ring.flags().count) ?? 0
            for f in findings { logger.error("rebuild: \(f)") }
            logger.critical("index rebuilt: recording goes on", metadata: ["segments": "\(count)", "flags": "\(flags)",
                                                                          "quarantined": "\(findings.filter { $0.kind == .quarantined }.count)"])
            return ring
        }
    }
}
