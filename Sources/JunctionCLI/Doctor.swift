import Evidence
import ArgumentParser
import Config
import Media
import Recorder
import Ring
import Update
import Uplink
import Wire
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension JunctionCommand {
    struct Doctor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check everything a box needs, one line each, with what to do about each problem.",
            discussion: """
                ✔ fine, ⚠ works but needs attention, ✘ broken (exit status 1). Takes about 10 s: it opens
                the camera, writes a short test file on the card and asks the commune server.
                Examples:
                  junction doctor
                  junction doctor --json
                """)

        @OptionGroup var options: BoxOptions
        @Flag(help: "Print the checks as JSON.") var json = false

        struct Check: Encodable {
            enum Level: String, Encodable { case ok, warning, failure }
            var name: String
            var level: Level
            var detail: String
            var advice: String?
            var mark: String { switch level { case .ok: "✔"; case .warning: "⚠"; case .failure: "✘" } }
        }

        func run() async throws {
            var checks: [Check] = []
            let config: JunctionConfiguration
            do {
                config = try options.load()
                checks.append(.init(name: "config", level: .ok, detail: "\(options.config) is valid (device \(config.device.id))"))
            } catch {
                checks.append(.init(name: "config", level: .failure, detail: "\(error)",
                                    advice: "fix the line named above in \(options.config), then run junction doctor again"))
                try finish(checks)
                return
            }
            Media.Snapshot.quietFFmpegLogs()
            let daemon = DaemonState.read(config)
            checks.append(recorder(daemon))
            let (cameraCheck, cameraKbps) = camera(config, daemon: daemon)
            checks.append(cameraCheck)
            let (storage, cardSpeed) = storage(config)
            checks += storage
            checks.append(await ring(config, daemon: daemon))
            checks.append(evidence(config))
            checks.append(speed(cardSpeed, cameraKbps: cameraKbps ?? daemon.health?.bitrateKbps ?? 0))
            checks.append(clock())
            checks += await server(config)
            checks.append(systemd())
            checks.append(release(config))
            checks.append(settings(config))
            try finish(checks)
        }

        func finish(_ checks: [Check]) throws {
            if json {
                print(try Output.json(checks))
            } else {
                for c in checks {
                    print("\(c.mark) \(c.name): \(c.detail)")
                    if let a = c.advice, c.level != .ok { print("    → \(a)") }
                }
                let bad = checks.filter { $0.level == .failure }.count, warn = checks.filter { $0.level == .warning }.count
                print(bad == 0 && warn == 0 ? "All good." : "\(bad) problem(s), \(warn) warning(s).")
            }
            if checks.contains(where: { $0.level == .failure }) { throw ExitCode(1) }
        }

        /// The release, the slots and the last update (issue 24): a rollback or a refusal is a
        /// warning (the box runs the release it came from), a slot that failed its tries too.
        func release(_ config: JunctionConfiguration) -> Check {
            let r = BoxFacts.standing(storage: config.storage.path)
            let line = BoxFacts.summary(r)
            if let l = r.last, ["rolled_back", "refused", "failed"].contains(l.result) {
                return .init(name: "release", level: .warning, detail: line,
                             advice: "the box runs the release it came from and keeps recording; `junction update status` has the details, and `commune rollout status` at the commune the rollout")
            }
            if r.pending != nil, r.booted != nil, r.slots.contains(where: { $0.name == r.booted && $0.state == "trial" }) {
                return .init(name: "release", level: .ok, detail: line + " (on trial: kept once it has recorded \(config.update.healthSegments) segments and reached the commune)")
            }
            return .init(name: "release", level: .ok, detail: line)
        }

        /// The commune's settings (issue 24, item 7): a change rolled back or refused is a
        /// warning (the box records with the settings it had), one replaced by the card's file too.
        func settings(_ config: JunctionConfiguration) -> Check {
            let state = SettingsState.load(path: SettingsState.path(storage: config.storage.path))
            let line = BoxSettings.summary(state, config: options.config)
            if let l = state.last, l.result != .applied, l.revision != state.inForce?.revision {
                let advice = l.result == .superseded
                    ? "the installer's junction.toml on the card is in force; the commune may send its change again (commune settings send)"
                    : "the box records with its previous settings; `commune settings list \(config.device.id)` at the commune shows the change and why"
                return .init(name: "settings", level: .warning, detail: line, advice: advice)
            }
            return .init(name: "settings", level: .ok, detail: line)
        }

        func recorder(_ daemon: DaemonState) -> Check {
            guard daemon.running, let h = daemon.health else {
                return .init(name: "recorder", level: .failure, detail: daemon.note ?? "not running",
                             advice: "systemctl start junction (journalctl -u junction says why it stopped)")
            }
            if h.state == .recording {
                return .init(name: "recorder", level: .ok, detail: "recording since \(Output.local(h.since)), \(h.segmentsWritten) segments this run")
            }
            return .init(name: "recorder", level: .failure, detail: "running but not recording (\(h.state.rawValue))\(h.lastError.map { ": \($0)" } ?? "")",
                         advice: h.lastErrorCode.map(Status.advice(forCode:)) ?? "see journalctl -u junction")
        }

        /// Opens the camera (a second connection beside the recorder's) and reads ~3 s of it;
        /// returns the check and the measured bitrate (nil when the camera could not be read).
        func camera(_ config: JunctionConfiguration, daemon: DaemonState) -> (Check, Double?) {
            let input: CameraInput
            do {
                input = try CameraInput(options: config.cameraInputOptions, interrupter: Interrupter())
            } catch {
                let level: Check.Level = .failure
                let what = error.code == .unauthenticated ? "the camera refused the user name or password" : error.message
                return (.init(name: "camera", level: level, detail: "\(config.camera.redactedURL): \(what)",
                              advice: Status.advice(forCode: error.code.rawValue)), nil)
            }
            let info = input.info
            let packet = Packet()
            var bytes = 0
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(3) {
                guard (try? input.read(into: packet)) != nil else { break }
                if packet.kind == .video { bytes += packet.size }
            }
            let elapsed = ContinuousClock.now - start
            let kbps = Double(bytes) * 8 / 1000 / max(0.5, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            let shape = "\(info.videoCodec) \(info.width)×\(info.height) \(Int(saturating: info.fps.rounded())) fps, about \(Int(saturating: kbps)) kbit/s"
            var problems: [String] = []
            if info.width < 640 { problems.append("the picture is small (\(info.width)×\(info.height)): plates and faces will not be readable; use the camera's main stream") }
            if kbps > 0 && kbps < 300 { problems.append("the bitrate is very low: raise it to 2–4 Mbit/s in the camera's web page") }
            if kbps > 16_000 { problems.append("the bitrate is very high: the card fills fast; 2–6 Mbit/s is plenty") }
            if info.fps > 0 && info.fps < 10 { problems.append("under 10 frames per second: moving cars are missed; set 15–25 fps") }
            if problems.isEmpty { return (.init(name: "camera", level: .ok, detail: "\(config.camera.redactedURL): \(shape)"), kbps) }
            return (.init(name: "camera", level: .warning, detail: "\(config.camera.redactedURL): \(shape)", advice: problems.joined(separator: "; ")), kbps)
        }

        /// How fast the card takes what the recorder gives it.
        struct CardSpeed {
            /// Bytes per second, 16 MB written then synced.
            var rate: Double
            /// The slowest of a few fragment-sized (512 kB) write + fdatasync rounds: how far the
            /// durable end trails the recording, so what a power cut may lose beyond the open
            /// fragment.
            var worstFragmentSync: Duration
        }

        /// The data path: there, writable, enough room; and how fast the card writes.
        func storage(_ config: JunctionConfiguration) -> ([Check], CardSpeed?) {
            let path = config.storage.path
            let probe = path + "/.doctor-write-test"
            let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let why = String(cString: strerror(errno))
                return ([.init(name: "storage", level: .failure, detail: "cannot write in \(path): \(why)",
                               advice: "check that the data card is mounted read-write at \(path) (mount | grep \(path)) and owned by the junction user")], nil)
            }
            defer { close(fd); unlink(probe) }
            // A short, bounded write test: 16 MB in 1 MB writes, then fdatasync.
            let block = [UInt8](repeating: 0x5a, count: 1 << 20)
            let start = ContinuousClock.now
            var written = 0
            for _ in 0..<16 {
                let n = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                written += n
            }
            _ = fdatasync(fd)
            let d = ContinuousClock.now - start
            let seconds = max(0.001, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
            // What the recorder does once a second: append one fragment, fdatasync it.
            var worst = Duration.zero
            for _ in 0..<5 {
                let t = ContinuousClock.now
                let n = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count / 2) }
                if n <= 0 { break }
                written += n
                _ = fdatasync(fd)
                worst = max(worst, ContinuousClock.now - t)
            }
            let rate = CardSpeed(rate: Double(16 << 20) / seconds, worstFragmentSync: worst)
            var checks: [Check] = []
            if written < (16 << 20) + 5 * (1 << 19) {
                checks.append(.init(name: "storage", level: .failure, detail: "the card at \(path) stopped taking data after \(Output.bytes(Int64(written)))",
                                    advice: "the card is full or failing: junction status shows the ring; replace the card if it keeps happening"))
                return (checks, nil)
            }
            guard let space = FileSystem.space(path) else { return ([.init(name: "storage", level: .failure, detail: "cannot read the size of \(path)")], rate) }
            // Retention keeps the reserve free whatever the budget says, so the ring can hold at most
            // total − reserve. A share of the card beyond that is simply capped; a fixed size beyond it
            // is a mistake in the settings (the box records less than the installer asked for).
            let reserve = Int64(config.storage.reserve.bytes)
            let usable = max(0, space.total - reserve)
            let detail: (Int64) -> String = { "\(path): \(Output.bytes(space.available)) free of \(Output.bytes(space.total)), ring budget \(Output.bytes($0))" }
            switch config.storage.budget {
            case .bytes(let b) where Int64(b.bytes) > usable:
                checks.append(.init(name: "storage", level: .warning, detail: detail(Int64(b.bytes)),
                                    advice: "max_bytes is more than the card can hold beside the \(Output.bytes(reserve)) reserve (\(Output.bytes(usable))): lower storage.max_bytes, or use max_percent"))
            case .bytes(let b):
                checks.append(.init(name: "storage", level: .ok, detail: detail(Int64(b.bytes))))
            case .percent(let p):
                checks.append(.init(name: "storage", level: .ok, detail: detail(min(space.total / 100 * Int64(p), usable))))
            }
            return (checks, rate)
        }

        func speed(_ speed: CardSpeed?, cameraKbps kbps: Double) -> Check {
            guard let speed else { return .init(name: "card speed", level: .warning, detail: "not measured (the card could not be written)") }
            let rate = speed.rate
            let need = kbps * 1000 / 8
            let sync = speed.worstFragmentSync
            let syncMs = Int(saturating: (Double(sync.components.seconds) * 1000 + Double(sync.components.attoseconds) / 1e15).rounded())
            let detail = "writes \(Output.bytes(Int64(saturating: rate)))/s" + (need > 0 ? ", the camera needs \(Output.bytes(Int64(saturating: need)))/s" : "")
                + "; a fragment is safe \(syncMs) ms after it is written (slowest of 5)"
            let advice = "use a faster card (A1/V30 or better, 'high endurance' for cameras)"
            if need > 0 && rate < need * 3 {
                return .init(name: "card speed", level: rate < need ? .failure : .warning, detail: detail, advice: advice)
            }
            // Recording loses at most the open fragment (≤ 1 s) plus this to a power cut.
            if sync > .seconds(1) {
                return .init(name: "card speed", level: .warning, detail: detail,
                             advice: "a power cut may lose more than 2 s of recording on this card: " + advice)
            }
            return .init(name: "card speed", level: .ok, detail: detail)
        }

        /// The device key that seals the footage (issue 13): its fingerprint, to compare with
        /// the one the commune shows for this box.
        func evidence(_ config: JunctionConfiguration) -> Check {
            if !config.storage.seal {
                return .init(name: "evidence", level: .warning, detail: "storage.seal = false: footage is not sealed, a court cannot check it",
                             advice: "remove storage.seal from junction.toml (sealing is on by default) and restart junction")
            }
            guard let key = DeviceKey.readPublic(at: config.devicePublicKeyPath) else {
                let exists = FileManager.default.fileExists(atPath: config.deviceKeyPath)
                return .init(name: "evidence", level: .warning,
                             detail: exists ? "the device key's public half (\(config.devicePublicKeyPath)) is missing" : "no device key yet: footage is not sealed",
                             advice: "the recorder makes the key when it starts (systemctl restart junction); journalctl -u junction says why it could not")
            }
            return .init(name: "evidence", level: .ok,
                         detail: "sealing with device key \(DeviceKey.fingerprint(of: key)) (public key \(key.rawRepresentation.base64EncodedString()))")
        }

        func ring(_ config: JunctionConfiguration, daemon: DaemonState) async -> Check {
            do {
                let ring = try await config.openRing(readOnly: true)
                guard ring.exists else {
                    await ring.close()
                    return .init(name: "ring", level: .warning, detail: "nothing recorded yet: no index at \(config.ringConfiguration.indexPath)",
                                 advice: "the recorder makes it when it starts: systemctl start junction")
                }
                let findings = try await ring.check(deep: false, skipping: daemon.running ? daemon.health?.openSegment : nil, recorderRunning: daemon.running)
                let usage = try await ring.usage()
                await ring.close()
                if findings.isEmpty { return .init(name: "ring", level: .ok, detail: "\(usage.segments) segments, \(Output.bytes(usage.ringBytes)), index consistent") }
                return .init(name: "ring", level: .failure, detail: "\(findings.count) problem(s), e.g. \(findings[0].kind.rawValue): \(findings[0].path)",
                             advice: "systemctl restart junction repairs what can be repaired; junction check lists everything")
            } catch {
                return .init(name: "ring", level: .failure, detail: "\(error)", advice: "junction check; junction reindex rebuilds the index from the files")
            }
        }

        func clock() -> Check {
            SystemClock().isSynchronized()
                ? .init(name: "clock", level: .ok, detail: "synchronised (\(Output.local(.now())))")
                : .init(name: "clock", level: .warning, detail: "NOT synchronised: footage times come from the box's own clock",
                        advice: "check the uplink and NTP (timedatectl status); times are corrected when it syncs")
        }

        /// The commune: reachable, TLS verifies, token accepted.
        func server(_ config: JunctionConfiguration) async -> [Check] {
            guard let server = config.server else {
                return [.init(name: "commune", level: .warning, detail: "no [server] in the config: flagged footage stays on the card",
                              advice: "add [server] url and token (commune devices add \(config.device.id) prints the token)")]
            }
            let transport: HTTPTransport
            do {
                transport = HTTPTransport(client: try HTTPTransport.makeClient(caFile: server.caFile), baseTimeoutSeconds: 10)
            } catch {
                return [.init(name: "commune", level: .failure, detail: "\(error)", advice: "fix server.ca_file")]
            }
            let result = await probe(server, device: config.device.id, transport: transport)
            try? await transport.client.shutdown()
            return result
        }

        func probe(_ server: JunctionConfiguration.Server, device: String, transport: HTTPTransport) async -> [Check] {
            let options: TusResponse
            do {
                options = try await transport.perform(TusRequest(method: "OPTIONS", url: server.tusURL, headers: [Tus.Header.resumable: Tus.version]))
            } catch {
                let text = "\(error)"
                if text.lowercased().contains("certificate") || text.lowercased().contains("handshake") {
                    return [.init(name: "commune", level: .failure, detail: "\(server.url): the TLS certificate does not verify (\(text))",
                                  advice: "if the commune uses its own CA, put its certificate in server.ca_file")]
                }
                return [.init(name: "commune", level: .failure, detail: "\(server.url) cannot be reached: \(text)",
                              advice: "check the uplink (4G dongle, Wi-Fi bridge) and server.url; uploads wait and resume on their own")]
            }
            guard options.status / 100 == 2 || options.headers.keys.contains(where: { $0.lowercased() == "tus-version" }) else {
                return [.init(name: "commune", level: .failure, detail: "\(server.tusURL) answers HTTP \(options.status), not tus",
                              advice: "check server.url / server.tus_url")]
            }
            // A HEAD on an upload that cannot exist: 404 with a good token, 401/403 without.
            let probe = TusClient.resolve("/files/doctor-probe-0", against: server.tusURL)
            let head = try? await transport.perform(TusRequest(method: "HEAD", url: probe,
                                                               headers: [Tus.Header.resumable: Tus.version, "Authorization": "Bearer " + server.token.reveal()]))
            switch head?.status {
            case 401, 403:
                return [.init(name: "commune", level: .failure, detail: "\(server.url) refuses this box's token",
                              advice: "put the token `commune devices add \(device)` printed in server.token")]
            case 404, 410:
                return [.init(name: "commune", level: .ok, detail: "\(server.url) reachable\(server.url.hasPrefix("https") ? ", TLS verified" : " (plain HTTP)"), token accepted")]
            default:
                return [.init(name: "commune", level: .warning, detail: "\(server.url) reachable; could not tell whether the token is accepted",
                              advice: "watch junction status for upload errors")]
            }
        }

        func systemd() -> Check {
            guard access("/run/systemd/system", F_OK) == 0,
                  let active = try? Self.output("/usr/bin/systemctl", ["is-active", "junction"]) else {
                return .init(name: "systemd", level: .ok, detail: "not running under systemd (a test or a hand-started recorder)")
            }
            let watchdog = (try? Self.output("/usr/bin/systemctl", ["show", "junction", "-p", "WatchdogUSec", "--value"])) ?? ""
            if active != "active" {
                return .init(name: "systemd", level: .failure, detail: "junction.service is \(active)", advice: "systemctl enable --now junction")
            }
            if watchdog.isEmpty || watchdog == "0" || watchdog == "infinity" {
                return .init(name: "systemd", level: .warning, detail: "junction.service active, watchdog NOT armed",
                             advice: "install systemd/junction.service as shipped (WatchdogSec=60)")
            }
            return .init(name: "systemd", level: .ok, detail: "junction.service active, watchdog armed (\(watchdog))")
        }

        static func output(_ path: String, _ args: [String]) throws -> String {
            var pipe: [Int32] = [0, 0]
            // Close-on-exec: only the child's stdout (dup2 clears the flag) stays open in it, so a
            // program it leaves running cannot hold the pipe and keep this read from its end.
            guard Glibc.pipe(&pipe) == 0 else { throw CLIError("pipe") }
            _ = fcntl(pipe[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(pipe[1], F_SETFD, FD_CLOEXEC)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
            var pid: pid_t = 0
            let argv = ([path] + args).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            guard posix_spawn(&pid, path, &actions, nil, argv, environ) == 0 else { throw CLIError("cannot run \(path)") }
            close(pipe[1])
            var out = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { read(pipe[0], $0.baseAddress, $0.count) }
                if n <= 0 { break }
                out += buf[0..<n]
            }
            close(pipe[0])
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return String(decoding: out, as: UTF8.self).trimmingSpaces
        }
    }
}
