import ArgumentParser
import Config
import Media
import Logging
import Recorder
import Ring
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Flags every subcommand shares.
struct BoxOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("The box's config file.", valueName: "file"))
    var config: String = ProcessInfo.processInfo.environment["JUNCTION_CONFIG"] ?? "/etc/junction/junction.toml"

    /// Loads and validates the config, or exits with its error (file, line, key, what to write),
    /// with the commune's settings in force laid over it.
    /// The config; from here on, times are read and shown in its `[device] time_zone` (the
    /// zone motion schedules use), unless TZ in the environment names a zone, which wins. A TZ
    /// that names none is said so and not used (it silently meant UTC).
    func load() throws -> JunctionConfiguration {
        let loaded: JunctionConfiguration
        do {
            // The installer's file, and the commune's settings in force over it (issue 24, item 7).
            loaded = JunctionCommand.BoxSettings.layered(try JunctionConfiguration.load(path: config), path: config)
        } catch {
            throw CLIError("\(error)")
        }
        TimeExpression.useZone(Self.zone(tz: ProcessInfo.processInfo.environment["TZ"], configured: loaded.device.timeZone))
        return loaded
    }

    /// The zone times are read and shown in: TZ's (":Asia/Ho_Chi_Minh" or "Asia/Ho_Chi_Minh")
    /// when it names one, else the configured one (the config's check made sure it is one).
    static func zone(tz: String?, configured: String, warn: (String) -> Void = { Progress.err($0 + "\n") })
        -> @Sendable (Timestamp) -> Int {
        let fallback = LocalTime(identifier: configured) ?? LocalTime(identifier: "UTC")!
        var chosen = fallback
        if let tz, !tz.isEmpty {
            let name = tz.hasPrefix(":") ? String(tz.dropFirst()) : tz
            if let zone = LocalTime(identifier: name) { chosen = zone } else {
                warn("junction: TZ=\"\(TerminalText.safe(String(tz.prefix(64))))\" is not a time zone; times are in [device] time_zone (\(configured)). Unset TZ, or give a name like Asia/Ho_Chi_Minh.")
            }
        }
        let zone = chosen
        return { zone.offsetSeconds(milliseconds: $0.milliseconds) }
    }
}

extension Logger {
    /// For technician commands: the output is the answer; only warnings and errors are logged.
    static var cli: Logger {
        var l = Logger(label: "junction")
        l.logLevel = .warning
        return l
    }
}

/// An error for a person: printed as it is, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
}

extension JunctionConfiguration {
    var ringConfiguration: Ring.Configuration {
        let budget: Ring.Configuration.Budget
        switch storage.budget {
        case .bytes(let b): budget = .bytes(Int64(b.bytes))
        case .percent(let p): budget = .percent(p)
        }
        return Ring.Configuration(root: storage.path, budget: budget, reserveBytes: Int64(storage.reserve.bytes),
                                  maxPinnedPercent: storage.maxPinnedPercent)
    }

    var statusPath: String { storage.path + "/status.json" }
    var uplinkStatusPath: String { storage.path + "/uplink.json" }
    /// The box's Ed25519 key (issue 13), beside the footage it seals; `.pub` beside it.
    var deviceKeyPath: String { ringConfiguration.deviceKeyPath }
    var devicePublicKeyPath: String { ringConfiguration.devicePublicKeyPath }
    /// The running recorder's control socket (flag and unflag go through it).
    var controlSocketPath: String { storage.path + "/control.sock" }

    /// How the recorder (and snapshot, doctor) open the camera.
    var cameraInputOptions: CameraInput.Options {
        var input = CameraInput.Options(url: camera.url, displayURL: camera.redactedURL)
        input.transport = camera.transport == .udp ? .udp : .tcp
        input.reader = camera.reader == "junction" ? .junction : .ffmpeg
        input.connectTimeoutSeconds = Double(camera.connectTimeoutSeconds)
        input.stallSeconds = Double(camera.stallSeconds)
        input.extra = camera.options
        return input
    }

    /// How the recorder opens the camera's sub-stream for activity (`[activity] stream`): as the
    /// camera, at that address.
    var activityInputOptions: CameraInput.Options? {
        guard let stream = activity.stream else { return nil }
        var input = cameraInputOptions
        input.url = stream
        input.displayURL = JunctionConfiguration.Camera.redact(stream)
        return input
    }

    /// Opens the ring for a CLI command, with an error that says what to do. A command that only
    /// looks (`readOnly`) creates nothing where nothing was recorded yet: it sees an empty ring.
    func openRing(readOnly: Bool = false, logger: Logger = .cli) async throws -> Ring {
        do {
            return try await Ring.open(ringConfiguration, creating: !readOnly, logger: logger)
        } catch {
            throw openFailure(error)
        }
    }

    /// Opens the ring; an index that cannot be opened (or, with `checkIntegrity`, fails SQLite's
    /// integrity check) is moved aside as `index.sqlite.broken-TIME`, never deleted, and a new
    /// empty one is opened, for the caller to rebuild from the files (`Ring.reindex`, which
    /// replays the flag and upload journals). A storage problem that is not the index throws
    /// `openFailure`.
    /// - Returns: the ring, and when the index was replaced, what was wrong and where it went.
    func openReplacingCorruptIndex(logger: Logger = .cli, checkIntegrity: Bool) async throws
        -> (ring: Ring, replaced: (problem: String, keptAs: String)?)
    {
        let ringConfig = ringConfiguration
        let problem: String
        do throws(RingError) {
            let ring = try await Ring.open(ringConfig, logger: logger)
            guard checkIntegrity else { return (ring, nil) }
            let integrity = (try? await ring.integrityCheck()) ?? "the integrity check could not run"
            if integrity == "ok" { return (ring, nil) }
            await ring.close()
            problem = integrity
        } catch {
            guard error.code == .index else { throw openFailure(error) }
            problem = "\(error)"
        }
        let aside = ringConfig.indexPath + ".broken-" + Timestamp.now().compact
        _ = rename(ringConfig.indexPath, aside)
        for suffix in ["-wal", "-shm"] { unlink(ringConfig.indexPath + suffix) }
        return (try await openRing(logger: logger), (problem, aside))
    }

    /// What a technician reads when the ring cannot be opened (not an index problem).
    func openFailure(_ error: RingError) -> CLIError {
        CLIError("cannot open the recordings at \(storage.path): \(error)\nCheck storage.path in the config and that the data card is mounted and writable.")
    }
}

enum Output {
    static func json<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    /// "1 h 24 min", "3 min 05 s", "12 s"
    static func duration(_ seconds: Double) -> String {
        let s = Int(saturating: seconds.rounded())
        if s >= 86400 { return "\(s / 86400) d \(s % 86400 / 3600) h" }
        if s >= 3600 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        if s >= 60 { return "\(s / 60) min \(pad2(s % 60)) s" }
        return "\(s) s"
    }

    static func pad2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    /// Local wall time for a person: "2026-11-29 14:02:05".
    static func local(_ t: Timestamp) -> String {
        let shifted = t.adding(milliseconds: Int64(TimeExpression.localOffset(at: t)) * 1000)
        let c = shifted.civil
        return "\(c.year)-\(pad2(c.month))-\(pad2(c.day)) \(pad2(c.hour)):\(pad2(c.minute)):\(pad2(c.second))"
    }

    static func bytes(_ n: Int64) -> String { ByteSize.format(UInt64(max(0, n))) }
}

/// The daemon's published health, if it is running.
struct DaemonState {
    var health: RecorderHealth?
    var running: Bool
    var note: String?

    static func read(_ config: JunctionConfiguration, now: Timestamp = .now()) -> DaemonState {
        guard let data = FileManager.default.contents(atPath: config.statusPath) else {
            return DaemonState(health: nil, running: false, note: "the recorder has not run on this data directory yet")
        }
        guard let h = try? JSONDecoder().decode(RecorderHealth.self, from: data) else {
            return DaemonState(health: nil, running: false, note: "status.json is unreadable")
        }
        let age = now.seconds(since: h.updatedAt)
        let alive = h.pid > 0 && kill(h.pid, 0) == 0
        if h.state == .stopped || !alive {
            return DaemonState(health: h, running: false, note: "the recorder is not running (last seen \(Output.local(h.updatedAt)))")
        }
        if age > 15 {
            return DaemonState(health: h, running: false, note: "the recorder is not answering (status \(Int(saturating: age)) s old)")
        }
        return DaemonState(health: h, running: true, note: nil)
    }
}
