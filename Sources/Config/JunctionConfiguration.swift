#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Activity
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Everything `junction.toml` says. Keys and their meaning are a contract (README, "Configuring
/// a box"): new keys may be added, none renamed.
public struct JunctionConfiguration: Sendable, Equatable {
    public struct Device: Sendable, Equatable {
        public var id: String
        /// The box's local time zone (an IANA name): motion schedules are read in it.
        public var timeZone: String = Self.defaultTimeZone
        public static let defaultTimeZone = "Asia/Ho_Chi_Minh"

        public init(id: String, timeZone: String = Self.defaultTimeZone) {
            self.id = id
            self.timeZone = timeZone
        }
    }

    public struct Camera: Sendable, Equatable {
        public enum Transport: String, Sendable, Equatable { case tcp, udp }
        /// A short name for the camera, used in paths and the index ("cam1").
        public var id: String = "cam1"
        public var url: String
        public var transport: Transport = .tcp
        /// What reads it: "ffmpeg" (libavformat) or "junction" (the box's own RTSP client for
        /// rtsp:// over TCP: H.264/H.265 and AAC, issue 25).
        public var reader: String = "ffmpeg"
        /// No packet for this long means the camera is stalled: reconnect.
        public var stallSeconds: Int = 5
        /// Opening the camera (DNS, TCP, RTSP DESCRIBE/SETUP/PLAY) may take this long.
        public var connectTimeoutSeconds: Int = 10
        /// Extra libavformat options (`[camera.options]`), passed as they are.
        public var options: [String: String] = [:]

        /// The URL with any password replaced by `***`, for logs and status.
        public var redactedURL: String { Self.redact(url) }

        /// Parses the userinfo as libavformat does (the authority ends at the first '/', '?' or
        /// '#'; the userinfo is everything before its *last* '@') and replaces the whole password.
        /// A password with a '/' in it (which no URL parser reads as one) is redacted as well:
        /// when there is an '@' past the authority, everything up to the last '@' goes.
        public static func redact(_ url: String) -> String {
            guard let scheme = url.firstRange(of: "://") else { return url }
            let rest = url[scheme.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
            let at = rest[..<authorityEnd].lastIndex(of: "@") ?? rest.lastIndex(of: "@")
            guard let at else { return url }
            let userinfo = rest[..<at]
            guard let colon = userinfo.firstIndex(of: ":") else {
                // No password, unless the '@' was found past the authority: then keep nothing of it.
                return at < authorityEnd ? url : String(url[..<scheme.upperBound]) + "***" + String(rest[at...])
            }
            return String(url[..<colon]) + ":***" + String(rest[at...])
        }
    }

    public struct Storage: Sendable, Equatable {
        public enum Budget: Sendable, Equatable {
            case bytes(ByteSize)
            case percent(Int)
        }
        public var path: String = "/var/lib/junction"
        public var budget: Budget = .percent(90)
        public var reserve: ByteSize = ByteSize(bytes: 512_000_000)
        public var segmentSeconds: Int = 10
        public var maxPinnedPercent: Int = 50
        /// fdatasync each fragment as it is written (a power cut loses at most ~1 s). Off, only
        /// a finished segment is synced: for storage that survives power loss (a UPS, a PC).
        public var syncFragments: Bool = true
        /// Seal every segment and gap with the box's key (issue 13). Off only to measure its cost
        /// (`make bench`) or on a box whose footage is never evidence: doctor then warns.
        public var seal: Bool = true
        public init() {}
    }

    /// The commune server. Absent: footage is flagged and pinned but not uploaded.
    public struct Server: Sendable, Equatable {
        public var url: String
        /// Prints as <redacted>: the configuration may be logged or dumped whole.
        public var token: Secret
        /// The tus creation endpoint (default: url + "/files/").
        public var tusURL: String
        public var allowInsecureHTTP: Bool = false
        /// Seconds between heartbeats (health, footage requests).
        public var heartbeatSeconds: Int = 60
        /// PEM file of the certificate authorities to trust instead of the system's (a commune
        /// with its own CA).
        public var caFile: String?
        /// The commune's Ed25519 public key (base64): countersignatures under another are not
        /// kept. Nil: the first one kept pins its key.
        public var communeKey: String?
    }

    public struct Upload: Sendable, Equatable {
        public enum Order: String, Sendable, Equatable {
            /// Within each flag, the oldest segment first (the start of an incident arrives first).
            case oldestFirst = "oldest_first"
            /// Within each flag, the newest segment first.
            case newestFirst = "newest_first"
        }
        /// Seconds added before and after every flagged range.
        public var preRollSeconds: Int = 10
        public var postRollSeconds: Int = 10
        /// Upload rate cap in kilobits per second; 0 means none.
        public var maxKbps: Int = 0
        /// Flags (and requests) go in the order they were made; this orders segments within one.
        public var order: Order = .oldestFirst
        /// A footage request's preview (issue 14): its keyframes as JPEGs this wide, one every
        /// `previewSeconds` at most, sent before its video. Off: the video alone.
        public var preview = true
        public var previewWidth = 320
        public var previewSeconds = 2
        public init() {}
    }

    public struct Log: Sendable, Equatable {
        public var level: String = "info"
        public init() {}
    }

    /// The activity index (issue 14, being built): each keyframe decoded to a small grey
    /// picture beside the recording, movement per cell, a summary sealed with each segment.
    public struct Activity: Sendable, Equatable {
        /// Off by default: decoding the main stream's 1080p keyframes costs about as much CPU as
        /// recording (`make bench`); with `stream` it is a fraction of that.
        public var enabled: Bool = false
        /// The camera's sub-stream (e.g. 640×360, ".../Channels/102"), decoded for activity
        /// instead of the recorded stream's keyframes; nil: the recorded stream's.
        public var stream: String?
        public init() {}
    }

    /// Motion flags (issue 14): movement in the zones, in the schedule, flags footage itself
    /// (source `motion`), uploaded like any other flag. Needs the activity index: turning
    /// motion on turns it on.
    public struct Motion: Sendable, Equatable {
        public var enabled: Bool = false
        /// Polygons on the picture, x and y from 0 to 1 (none and no `cells`: the whole picture).
        public var zones: [[MotionZones.Point]] = []
        /// Cells of the 16x9 activity grid, 0 (top left) to 143, row by row.
        public var cells: [Int] = []
        /// When movement counts, local time; empty: always.
        public var schedule: [DailyWindow] = []
        public var threshold: Int = 1
        public var minSeconds: Int = 2
        public var preRollSeconds: Int = 10
        public var postRollSeconds: Int = 10
        public var maxPinSecondsPerHour: Int = 600
        public init() {}

        /// The rules the recorder's trigger applies.
        public var rules: MotionRules {
            MotionRules(zone: MotionZones.mask(polygons: zones, cells: cells), schedule: schedule, threshold: threshold,
                        minSeconds: Double(minSeconds), preRollSeconds: Double(preRollSeconds), postRollSeconds: Double(postRollSeconds),
                        maxPinSecondsPerHour: Double(maxPinSecondsPerHour))
        }
    }

    /// Fleet updates (issue 24): a new release on trial is kept only once it has recorded and
    /// reached the commune; otherwise the box goes back to the release it came from.
    public struct Update: Sendable, Equatable {
        /// Segments the new release must seal after its boot before it is kept.
        public var healthSegments = 3
        /// Seconds after boot in which it must have done so, and had a heartbeat accepted.
        public var healthDeadlineSeconds = 900
        /// Boots the new release is given before the box returns to the old one.
        public var tries = 3
        public init() {}
    }

    public var device: Device
    public var camera: Camera
    public var update: Update = Update()
    public var storage: Storage = Storage()
    public var upload: Upload = Upload()
    public var server: Server?
    public var log: Log = Log()
    public var activity: Activity = Activity()
    public var motion: Motion = Motion()

    public init(device: Device, camera: Camera, storage: Storage = Storage(), upload: Upload = Upload(), log: Log = Log()) {
        self.device = device
        self.camera = camera
        self.storage = storage
        self.upload = upload
        self.log = log
    }
}

/// A config file that cannot be used: which file, line and key, what is wrong, and what to write.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let key { s += "\(key): " }
        return s + message
    }
}

extension JunctionConfiguration {
    /// Reads and validates a config file. Errors name the file, line and key.
    public static func load(path: String) throws(ConfigError) -> JunctionConfiguration {
        try parse(try ConfigFile.read(path: path), file: path)
    }

    public static func parse(_ text: String, file: String = "junction.toml") throws(ConfigError) -> JunctionConfiguration {
        guard text.utf8.count <= ConfigFile.maxBytes else {
            throw ConfigError(file: file, line: nil, key: nil, message: ConfigFile.tooLarge)
        }
        let doc: TOMLDocument
        do {
            doc = try TOMLDocument(parsing: text)
        } catch {
            throw ConfigError(file: file, line: error.line, key: nil, message: error.message)
        }
        return try read(doc, file: file)
    }

    static func read(_ doc: TOMLDocument, file: String) throws(ConfigError) -> JunctionConfiguration {
        var reader = Reader(doc: doc, file: file)
        return try reader.read()
    }
}

private struct Reader {
    let doc: TOMLDocument
    let file: String
    var used: Set<String> = []

    static let known: [String: String] = [
        "device.id": "the box's name, e.g. \"thaithuy-0042\"",
        "device.time_zone": "the box's local time zone, e.g. \"Asia/Ho_Chi_Minh\" (motion schedules are read in it)",
        "camera.id": "a short camera name, e.g. \"cam1\"",
        "camera.url": "the camera's stream, e.g. \"rtsp://user:pass@192.168.1.64:554/Streaming/Channels/101\"",
        "camera.transport": "\"tcp\" or \"udp\"",
        "camera.reader": "\"ffmpeg\" (libavformat) or \"junction\" (the box's own RTSP client: rtsp:// over TCP, H.264/H.265 and AAC)",
        "camera.stall_seconds": "seconds without video before reconnecting (1–60)",
        "camera.connect_timeout_seconds": "seconds allowed to open the camera (1–120)",
        "storage.path": "where segments and the index live",
        "storage.max_bytes": "the ring's size, e.g. \"24GB\"",
        "storage.max_percent": "the ring's size as a share of the card (1–99)",
        "storage.reserve_bytes": "space always left free, e.g. \"512MB\"",
        "storage.segment_seconds": "target segment length in seconds (2–120)",
        "storage.max_pinned_percent": "share of the ring flagged footage may hold (1–90)",
        "storage.sync_fragments": "true (each second is on the card as it is written) or false (only whole segments: a power cut may lose the open one)",
        "storage.seal": "true (every segment is sealed with the box's key: evidence a court can check) or false (no seal: for measuring its cost)",
        "activity.enabled": "true (index movement from each keyframe, sealed with the segment) or false (no activity index)",
        "activity.stream": "the camera's sub-stream to decode for activity, e.g. \"rtsp://user:pass@192.168.1.64:554/Streaming/Channels/102\" (default: the recorded stream's keyframes)",
        "motion.enabled": "true (movement in the zones flags footage by itself; turns the activity index on) or false",
        "motion.zones": "polygons on the picture, x and y from 0 to 1, e.g. [[0.1, 0.5, 0.6, 0.5, 0.6, 1.0, 0.1, 1.0]]",
        "motion.cells": "cells of the 16x9 grid, 0 (top left) to 143, e.g. [80, 81, 96, 97]",
        "motion.schedule": "when movement counts, local time, e.g. [\"22:00-05:00\"] (empty: always)",
        "motion.threshold": "cells of the zones that must move at once (1–144)",
        "motion.min_seconds": "movement shorter than this flags nothing (0–600)",
        "motion.pre_roll_seconds": "seconds flagged before the movement (0–600)",
        "motion.post_roll_seconds": "seconds flagged after it (0–600)",
        "motion.max_pin_seconds_per_hour": "footage motion flags may pin in any hour, rolls included (10–3600)",
        "server.url": "the commune server, e.g. \"https://commune.example.vn\"",
        "server.token": "this box's token (commune devices add ID prints it)",
        "server.tus_url": "the upload endpoint (default: server.url + \"/files/\")",
        "server.allow_insecure_http": "true to allow an http:// server (trusted networks only)",
        "server.heartbeat_seconds": "seconds between heartbeats to the commune (5–3600)",
        "server.ca_file": "a PEM file of certificate authorities to trust for the commune's HTTPS",
        "server.commune_key": "the commune's public key in base64 (commune devices add prints it); without it the first countersignature pins its key",
        "upload.max_kbps": "upload rate cap in kilobits per second, 0 for none",
        "upload.order": "\"oldest_first\" or \"newest_first\" within each flag",
        "upload.pre_roll_seconds": "seconds added before every flagged range (0–600)",
        "upload.post_roll_seconds": "seconds added after every flagged range (0–600)",
        "upload.preview": "true (send a footage request's keyframes as small pictures before its video) or false",
        "upload.preview_width": "the preview pictures' width in pixels (160–1280)",
        "upload.preview_seconds": "at most one preview picture every this many seconds (1–60)",
        "log.level": "trace, debug, info, notice, warning or error",
        "update.health_segments": "segments a new release must record after it boots before the box keeps it (1–100)",
        "update.health_deadline_seconds": "seconds after boot in which it must record them and reach the commune (60–86400)",
        "update.tries": "boots a new release is given before the box goes back to the one it came from (1–10)",
    ]

    func fail(_ key: String?, line: Int?, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line, key: key, message: message)
    }

    mutating func value(_ key: String) -> TOMLValue? {
        used.insert(key)
        return doc[key]
    }

    mutating func string(_ key: String) throws(ConfigError) -> (String, Int)? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v.kind else {
            throw fail(key, line: v.line, "expected text in double quotes (\(Self.known[key] ?? "")), found \(v.typeName)")
        }
        try checkPlainText(s, key: key, line: v.line)
        return (s, v.line)
    }

    /// No value of this file needs a control character, and a NUL or a newline in a path, a
    /// URL or a zone is cut or misread by the system below (issue 22: a NUL in storage.path
    /// and in time_zone was taken).
    func checkPlainText(_ s: String, key: String, line: Int) throws(ConfigError) {
        if let bad = s.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw fail(key, line: line, "holds a control character (U+\(String(format04: bad.value))): write the value without it")
        }
    }

    mutating func int(_ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let v = value(key) else { return nil }
        guard case .integer(let i) = v.kind else {
            throw fail(key, line: v.line, "expected a whole number from \(range.lowerBound) to \(range.upperBound), found \(v.typeName)")
        }
        guard let n = Int(exactly: i), range.contains(n) else {
            throw fail(key, line: v.line, "\(i) is out of range: allowed \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    mutating func size(_ key: String) throws(ConfigError) -> ByteSize? {
        guard let v = value(key) else { return nil }
        switch v.kind {
        case .string(let s):
            guard let size = ByteSize(parsing: s) else {
                throw fail(key, line: v.line, "\"\(s)\" is not a size: write a number and a unit, e.g. \"24GB\", \"512MB\" or \"1.5GiB\"")
            }
            return size
        case .integer(let i) where i >= 0:
            return ByteSize(bytes: UInt64(i))
        default:
            throw fail(key, line: v.line, "expected a size such as \"24GB\", found \(v.typeName)")
        }
    }

    /// A stream address has a scheme and something after it.
    func checkStreamAddress(_ url: String, key: String, line: Int) throws(ConfigError) {
        guard let schemeEnd = url.firstRange(of: "://"), !url[..<schemeEnd.lowerBound].isEmpty,
              !url[schemeEnd.upperBound...].isEmpty else {
            throw fail(key, line: line, "\"\(JunctionConfiguration.Camera.redact(url))\" is not a stream address: write it like \"rtsp://192.168.1.64:554/stream1\"")
        }
    }

    mutating func read() throws(ConfigError) -> JunctionConfiguration {
        // Unknown keys first: a typo must not silently fall back to a default.
        for (key, v) in doc.entries where Self.known[key] == nil && !key.hasPrefix("camera.options.") {
            let section = key.split(separator: ".").first.map(String.init) ?? key
            let siblings = Self.known.keys.filter { $0.hasPrefix(section + ".") }.sorted()
            let hint = siblings.isEmpty
                ? "known sections: [device], [camera], [camera.options], [storage], [server], [upload], [log], [activity], [motion], [update]"
                : "known keys here: " + siblings.joined(separator: ", ")
            throw fail(key, line: v.line, "unknown key (\(hint))")
        }

        guard let (id, idLine) = try string("device.id") else {
            throw fail("device.id", line: doc.tables["device"], "missing: every box needs a name, e.g.\n  [device]\n  id = \"thaithuy-0042\"")
        }
        try checkName(id, key: "device.id", line: idLine)

        guard let (url, urlLine) = try string("camera.url") else {
            throw fail("camera.url", line: doc.tables["camera"], "missing: the camera's stream address, e.g.\n  [camera]\n  url = \"rtsp://user:pass@192.168.1.64:554/Streaming/Channels/101\"")
        }
        try checkStreamAddress(url, key: "camera.url", line: urlLine)
        var camera = JunctionConfiguration.Camera(url: url)
        if let (cid, line) = try string("camera.id") {
            try checkName(cid, key: "camera.id", line: line)
            camera.id = cid
        }
        if let (t, line) = try string("camera.transport") {
            guard let transport = JunctionConfiguration.Camera.Transport(rawValue: t.lowercased()) else {
                throw fail("camera.transport", line: line, "\"\(t)\" is not a transport: write \"tcp\" (works through most networks) or \"udp\"")
            }
            camera.transport = transport
        }
        if let (r, line) = try string("camera.reader") {
            guard ["ffmpeg", "junction"].contains(r.lowercased()) else {
                throw fail("camera.reader", line: line, "\"\(TerminalText.safe(String(r.prefix(40))))\" is not a reader: write \"ffmpeg\" (the default) or \"junction\"")
            }
            camera.reader = r.lowercased()
        }
        if let s = try int("camera.stall_seconds", in: 1...60) { camera.stallSeconds = s }
        if let s = try int("camera.connect_timeout_seconds", in: 1...120) { camera.connectTimeoutSeconds = s }
        for (key, v) in doc.entries where key.hasPrefix("camera.options.") {
            let name = String(key.dropFirst("camera.options.".count))
            switch v.kind {
            case .string(let s):
                try checkPlainText(s, key: key, line: v.line)
                camera.options[name] = s
            case .integer(let i): camera.options[name] = String(i)
            case .float(let d): camera.options[name] = String(d)
            case .bool(let b): camera.options[name] = b ? "1" : "0"
            case .array: throw fail(key, line: v.line, "a camera option must be a single value")
            }
        }

        var storage = JunctionConfiguration.Storage()
        if let (p, line) = try string("storage.path") {
            guard p.hasPrefix("/") else {
                throw fail("storage.path", line: line, "\"\(p)\" must be an absolute path, e.g. \"/var/lib/junction\"")
            }
            storage.path = p
        }
        let maxBytesLine = doc["storage.max_bytes"]?.line
        let maxBytes = try size("storage.max_bytes")
        let maxPercent = try int("storage.max_percent", in: 1...99)
        switch (maxBytes, maxPercent) {
        case (.some, .some):
            throw fail("storage.max_bytes", line: maxBytesLine, "set either max_bytes or max_percent, not both")
        case (.some(let b), nil):
            guard b.bytes >= 50_000_000 else {
                throw fail("storage.max_bytes", line: maxBytesLine, "\(b) is too small to hold useful footage: allow at least \"50MB\"")
            }
            storage.budget = .bytes(b)
        case (nil, .some(let p)):
            storage.budget = .percent(p)
        case (nil, nil):
            break
        }
        if let r = try size("storage.reserve_bytes") { storage.reserve = r }
        if let s = try int("storage.segment_seconds", in: 2...120) { storage.segmentSeconds = s }
        if let p = try int("storage.max_pinned_percent", in: 1...90) { storage.maxPinnedPercent = p }
        if let v = value("storage.sync_fragments") {
            guard case .bool(let b) = v.kind else {
                throw fail("storage.sync_fragments", line: v.line, "expected true or false (true keeps all but the last second through a power cut)")
            }
            storage.syncFragments = b
        }
        if let v = value("storage.seal") {
            guard case .bool(let b) = v.kind else {
                throw fail("storage.seal", line: v.line, "expected true or false (true seals every segment so a court can check it)")
            }
            storage.seal = b
        }

        var upload = JunctionConfiguration.Upload()
        if let p = try int("upload.pre_roll_seconds", in: 0...600) { upload.preRollSeconds = p }
        if let p = try int("upload.post_roll_seconds", in: 0...600) { upload.postRollSeconds = p }
        if let k = try int("upload.max_kbps", in: 0...1_000_000) { upload.maxKbps = k }
        if let v = value("upload.preview") {
            guard case .bool(let b) = v.kind else {
                throw fail("upload.preview", line: v.line, "expected true or false (true sends a request's pictures before its video)")
            }
            upload.preview = b
        }
        if let w = try int("upload.preview_width", in: 160...1280) { upload.previewWidth = w }
        if let e = try int("upload.preview_seconds", in: 1...60) { upload.previewSeconds = e }
        if let (o, line) = try string("upload.order") {
            guard let order = JunctionConfiguration.Upload.Order(rawValue: o) else {
                throw fail("upload.order", line: line, "\"\(o)\" is not an order: write \"oldest_first\" or \"newest_first\"")
            }
            upload.order = order
        }

        var server: JunctionConfiguration.Server?
        if let (url, urlLine) = try string("server.url") {
            guard let (token, _) = try string("server.token"), !token.isEmpty else {
                throw fail("server.token", line: doc.tables["server"] ?? urlLine, "missing: the token `commune devices add \(id)` printed for this box")
            }
            var allowHTTP = false
            if let v = value("server.allow_insecure_http") {
                guard case .bool(let b) = v.kind else { throw fail("server.allow_insecure_http", line: v.line, "expected true or false") }
                allowHTTP = b
            }
            let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
            do throws(WebAddress.Problem) {
                _ = try WebAddress(url, allowHTTP: allowHTTP)
            } catch {
                throw fail("server.url", line: urlLine, "\"\(url)\" \(error)")
            }
            var tus = trimmed + "/files/"
            if let (t, line) = try string("server.tus_url") {
                do throws(WebAddress.Problem) {
                    _ = try WebAddress(t, allowHTTP: allowHTTP)
                } catch {
                    throw fail("server.tus_url", line: line, "\"\(t)\" \(error)")
                }
                tus = t
            }
            server = .init(url: trimmed, token: Secret(token), tusURL: tus, allowInsecureHTTP: allowHTTP)
            if let h = try int("server.heartbeat_seconds", in: 5...3600) { server?.heartbeatSeconds = h }
            if let (ca, line) = try string("server.ca_file") {
                guard ca.hasPrefix("/") else { throw fail("server.ca_file", line: line, "\"\(ca)\" must be an absolute path to a PEM file") }
                guard access(ca, R_OK) == 0 else { throw fail("server.ca_file", line: line, "\(ca) cannot be read: copy the commune's CA certificate (PEM) there") }
                server?.caFile = ca
            }
            if let (key, line) = try string("server.commune_key") {
                guard key.utf8.count == 44, let raw = Data(base64Encoded: key), raw.count == 32 else {
                    throw fail("server.commune_key", line: line, "is not an Ed25519 public key in base64 (44 characters, as commune devices add prints it)")
                }
                server?.communeKey = key
            }
        } else if let v = doc["server.token"] {
            throw fail("server.url", line: v.line, "server.token is set but server.url is missing")
        }

        var log = JunctionConfiguration.Log()
        if let (level, line) = try string("log.level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(level.lowercased()) else {
                throw fail("log.level", line: line, "\"\(level)\" is not a level: use one of \(levels.joined(separator: ", "))")
            }
            log.level = level.lowercased()
        }
        var config = JunctionConfiguration(device: .init(id: id), camera: camera, storage: storage, upload: upload, log: log)
        config.server = server
        if let v = value("activity.enabled") {
            guard case .bool(let b) = v.kind else {
                throw fail("activity.enabled", line: v.line, "expected true or false (true indexes movement from each keyframe)")
            }
            config.activity.enabled = b
        }
        if let (stream, line) = try string("activity.stream") {
            try checkStreamAddress(stream, key: "activity.stream", line: line)
            config.activity.stream = stream
        }
        if let (zone, line) = try string("device.time_zone") {
            do throws(TZifError) { _ = try LocalTime.load(identifier: zone) } catch {
                throw fail("device.time_zone", line: line, "\"\(TerminalText.safe(String(zone.prefix(64))))\" is not a time zone here (\(TerminalText.safe(error.message))): use a name like \"Asia/Ho_Chi_Minh\"")
            }
            config.device.timeZone = zone
        }
        config.motion = try readMotion()
        if config.motion.enabled { config.activity.enabled = true }
        if let n = try int("update.health_segments", in: 1...100) { config.update.healthSegments = n }
        if let d = try int("update.health_deadline_seconds", in: 60...86_400) { config.update.healthDeadlineSeconds = d }
        if let t = try int("update.tries", in: 1...10) { config.update.tries = t }
        let needed = config.update.healthSegments * config.storage.segmentSeconds
        if needed >= config.update.healthDeadlineSeconds {
            throw fail("update.health_deadline_seconds", line: doc["update.health_deadline_seconds"]?.line ?? doc["update.health_segments"]?.line,
                       "\(config.update.healthDeadlineSeconds) s is too short to record \(config.update.healthSegments) segments of \(config.storage.segmentSeconds) s: allow more than \(needed) s, or fewer segments")
        }
        return config
    }

    mutating func readMotion() throws(ConfigError) -> JunctionConfiguration.Motion {
        var m = JunctionConfiguration.Motion()
        if let v = value("motion.enabled") {
            guard case .bool(let b) = v.kind else {
                throw fail("motion.enabled", line: v.line, "expected true or false (true flags footage where something moves in the zones)")
            }
            m.enabled = b
        }
        func number(_ k: TOMLValue.Kind) -> Double? {
            switch k {
            case .integer(let i): Double(i)
            case .float(let d): d
            default: nil
            }
        }
        if let v = value("motion.zones") {
            let example = "write each zone as x, y pairs from 0 to 1, e.g. zones = [[0.1, 0.5, 0.6, 0.5, 0.6, 1.0, 0.1, 1.0]]"
            guard case .array(let zones) = v.kind else { throw fail("motion.zones", line: v.line, "expected a list of zones: \(example)") }
            guard zones.count <= MotionZones.maxPolygons else {
                throw fail("motion.zones", line: v.line, "\(zones.count) zones: at most \(MotionZones.maxPolygons)")
            }
            for (n, zone) in zones.enumerated() {
                guard case .array(let values) = zone else { throw fail("motion.zones", line: v.line, "zone \(n + 1) is not a list of numbers: \(example)") }
                let numbers = values.compactMap(number)
                guard numbers.count == values.count, numbers.count % 2 == 0, numbers.count >= 6 else {
                    throw fail("motion.zones", line: v.line, "zone \(n + 1) needs at least 3 points, each an x and a y: \(example)")
                }
                guard numbers.count / 2 <= MotionZones.maxPoints else {
                    throw fail("motion.zones", line: v.line, "zone \(n + 1) has \(numbers.count / 2) points: at most \(MotionZones.maxPoints)")
                }
                guard numbers.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else {
                    throw fail("motion.zones", line: v.line, "zone \(n + 1) has a point off the picture: x and y go from 0 (left, top) to 1 (right, bottom)")
                }
                m.zones.append(stride(from: 0, to: numbers.count, by: 2).map { MotionZones.Point(x: numbers[$0], y: numbers[$0 + 1]) })
            }
        }
        if let v = value("motion.cells") {
            guard case .array(let values) = v.kind, values.count <= ActivityGrid.cells else {
                throw fail("motion.cells", line: v.line, "expected a list of at most \(ActivityGrid.cells) cell numbers, e.g. [80, 81, 96, 97]")
            }
            for value in values {
                guard case .integer(let c) = value, (0..<Int64(ActivityGrid.cells)).contains(c) else {
                    throw fail("motion.cells", line: v.line, "cells are numbered 0 (top left) to \(ActivityGrid.cells - 1), row by row (16 a row)")
                }
                m.cells.append(Int(c))
            }
        }
        if let v = value("motion.schedule") {
            guard case .array(let values) = v.kind, values.count <= 24 else {
                throw fail("motion.schedule", line: v.line, "expected a list of at most 24 times of day, e.g. [\"22:00-05:00\"]")
            }
            for value in values {
                guard case .string(let s) = value, let w = DailyWindow(parsing: s) else {
                    throw fail("motion.schedule", line: v.line, "write each as \"HH:MM-HH:MM\" on a 24-hour clock, e.g. \"22:00-05:00\" (across midnight)")
                }
                m.schedule.append(w)
            }
        }
        if let t = try int("motion.threshold", in: 1...ActivityGrid.cells) { m.threshold = t }
        if let s = try int("motion.min_seconds", in: 0...600) { m.minSeconds = s }
        if let s = try int("motion.pre_roll_seconds", in: 0...600) { m.preRollSeconds = s }
        if let s = try int("motion.post_roll_seconds", in: 0...600) { m.postRollSeconds = s }
        if let s = try int("motion.max_pin_seconds_per_hour", in: 10...3600) { m.maxPinSecondsPerHour = s }
        if m.enabled, m.preRollSeconds + m.postRollSeconds + max(1, m.minSeconds) > m.maxPinSecondsPerHour {
            throw fail("motion.max_pin_seconds_per_hour", line: doc["motion.max_pin_seconds_per_hour"]?.line ?? doc.tables["motion"],
                       "\(m.maxPinSecondsPerHour) s cannot hold one flag: its rolls (\(m.preRollSeconds) + \(m.postRollSeconds) s) and the least movement (\(max(1, m.minSeconds)) s); raise it or shorten the rolls")
        }
        return m
    }

    func checkName(_ name: String, key: String, line: Int) throws(ConfigError) {
        guard PlainName.isValid(name) else {
            throw fail(key, line: line, "\"\(name)\" is not a usable name: use 1–64 letters, digits, '-', '_' or '.', e.g. \"thaithuy-0042\"")
        }
    }
}

extension String {
    /// "0000": four hex digits, upper case.
    init(format04 v: UInt32) {
        let h = String(v, radix: 16, uppercase: true)
        self = String(repeating: "0", count: Swift.max(0, 4 - h.count)) + h
    }
}
