#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The box ↔ commune control channel. The box dials out (carrier NAT): every
/// `server.heartbeat_seconds` it posts its health and what it has done about each open footage
/// request to `POST /api/v1/heartbeat`; the answer carries the requests still open for it.
/// JSON, snake_case keys, RFC 3339 UTC times. Contract: add keys freely, never rename.
public enum Heartbeat {
    public static let path = "/api/v1/heartbeat"

    /// Bounds on one heartbeat (README, "Limits"): the commune refuses more with 413 and what
    /// was over, and the box never sends more (it coarsens coverage and cuts long text).
    public enum Limits {
        public static let maxBodyBytes = 256 << 10
        public static let maxRequests = 100
        public static let maxSpansPerRequest = 1000
        public static let maxTextCharacters = 500
        /// Chain records a heartbeat carries for the commune's copy (their bodies are bounded by
        /// `ChainRecord`; the whole heartbeat by `maxBodyBytes`, which the box fits them to).
        public static let maxChainRecords = 200
    }

    /// What the box posts.
    public struct Report: Sendable, Codable, Equatable {
        public var device: String
        public var health: Health
        /// Coverage of every request the last answer carried.
        public var requests: [RequestReport]
        /// The box's public key and the head of its evidence chain (nil from older boxes).
        public var evidence: ChainHead?
        /// The chain records the commune's last answer asked for (`Reply.chainWanted`), from the
        /// first one asked, in order: the commune's copy of a requested range's chain, through
        /// the head it countersigned after the range (so its bundles show a cut tail).
        public var chain: [SealedRecord]?
        /// When something moved in the box's recent footage, a byte a minute (issue 14), from
        /// the minute the commune's last answer named (`Reply.activityFrom`).
        public var activity: ActivityMinutes?
        /// Where the box stands with updates (issue 24; nil from boxes without A/B slots).
        public var update: FleetUpdate.Report?
        /// Where the box stands with the commune's settings (issue 24, item 7; nil from older boxes).
        public var settings: RemoteSettings.Report?

        public init(device: String, health: Health, requests: [RequestReport] = [], evidence: ChainHead? = nil,
                    chain: [SealedRecord]? = nil, activity: ActivityMinutes? = nil, update: FleetUpdate.Report? = nil,
                    settings: RemoteSettings.Report? = nil) {
            self.update = update
            self.settings = settings
            self.device = device
            self.health = health
            self.requests = requests
            self.evidence = evidence
            self.chain = chain
            self.activity = activity
        }
    }

    /// Activity per minute, compact: the officer sees *when* something moved before any video
    /// is asked for. `levels` is hex, one byte a minute from `from` (a whole minute): 255
    /// nothing known (not recorded, or recorded without the activity index), 0 recorded and
    /// still, 1–254 how busy the busiest moment was (the busiest cell's share of changed
    /// pixels, 254 all of it). A day is 1 440 bytes; a heartbeat a minute carries two or three.
    public struct ActivityMinutes: Sendable, Codable, Equatable {
        public var from: Timestamp
        public var levels: String

        /// Bound (README, "Limits"): a day of minutes.
        public static let maxMinutes = 1440
        public static let unknown: UInt8 = 255

        public init(from: Timestamp, levels: [UInt8]) {
            self.from = from
            self.levels = hex(levels)
        }

        /// The levels, or nil when they break a rule (not hex, past the bound, `from` not a
        /// whole minute): the commune then keeps none of them.
        public var decoded: [UInt8]? {
            guard from.milliseconds % 60_000 == 0, levels.utf8.count <= 2 * Self.maxMinutes, let b = bytes(fromHex: levels) else { return nil }
            return b
        }
    }

    /// Sequence numbers of chain records the commune lacks: `after` + 1 through `through`.
    public struct ChainRange: Sendable, Codable, Equatable {
        public var after: Int64
        public var through: Int64

        public init(after: Int64, through: Int64) {
            self.after = after
            self.through = through
        }

        enum CodingKeys: String, CodingKey { case after, through }

        /// Sequence numbers in `Bounds.sequence`, `through` past `after`.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            after = try c.decode(Int64.self, forKey: .after, in: 0...Bounds.sequence.upperBound)
            through = try c.decode(Int64.self, forKey: .through, in: Bounds.sequence)
            guard through > after else {
                throw DecodingError.dataCorruptedError(forKey: .through, in: c, debugDescription: "through \(through) is not after \(after)")
            }
        }
    }

    /// The box's key (base64 of its Ed25519 public key) and its newest chain record (issue 13).
    public struct ChainHead: Sendable, Codable, Equatable {
        public var publicKey: String
        public var seq: Int64?
        public var hash: String?

        public init(publicKey: String, seq: Int64?, hash: String?) {
            self.publicKey = publicKey
            self.seq = seq
            self.hash = hash
        }

        enum CodingKeys: String, CodingKey { case publicKey = "public_key", seq, hash }
    }

    /// The commune's signature over (device, its key, chain head, the time it received it): it
    /// pins the box's chain in time even when the box's clock was wrong, a later cut of the
    /// chain's tail shows against it, and (version 2, issue 23) it names the device key it saw,
    /// so a bundle re-sealed under another key cannot borrow it. The message signed is
    /// `Countersign.message`.
    public struct Countersign: Sendable, Codable, Equatable {
        public var device: String
        /// Base64 of the device key the commune saw with the head (nil: a version-1
        /// countersignature, made before issue 23, which does not cover the key).
        public var deviceKey: String?
        public var seq: Int64
        public var hash: String
        public var receivedAt: Timestamp
        /// Base64 of the commune's Ed25519 signature, and of the commune's public key.
        public var signature: String
        public var communeKey: String

        public init(device: String, deviceKey: String?, seq: Int64, hash: String, receivedAt: Timestamp, signature: String, communeKey: String) {
            self.device = device
            self.deviceKey = deviceKey
            self.seq = seq
            self.hash = hash
            self.receivedAt = receivedAt
            self.signature = signature
            self.communeKey = communeKey
        }

        enum CodingKeys: String, CodingKey {
            case device, seq, hash, signature, receivedAt = "received_at", communeKey = "commune_key", deviceKey = "device_key"
        }

        /// Version 2: `junction-countersign/2\n{device}\n{device_key}\n{seq}\n{hash}\n{received_at as ms}`;
        /// version 1 (no device key): `junction-countersign/1\n{device}\n{seq}\n{hash}\n{received_at as ms}`.
        public static func message(device: String, deviceKey: String?, seq: Int64, hash: String, receivedAt: Timestamp) -> [UInt8] {
            guard let deviceKey else { return Array("junction-countersign/1\n\(device)\n\(seq)\n\(hash)\n\(receivedAt.milliseconds)".utf8) }
            return Array("junction-countersign/2\n\(device)\n\(deviceKey)\n\(seq)\n\(hash)\n\(receivedAt.milliseconds)".utf8)
        }

        public var message: [UInt8] { Self.message(device: device, deviceKey: deviceKey, seq: seq, hash: hash, receivedAt: receivedAt) }
    }

    /// What in a report is past `Limits`, or nil.
    public static func problem(_ r: Report) -> String? {
        if r.requests.count > Limits.maxRequests { return "the heartbeat reports \(r.requests.count) requests; at most \(Limits.maxRequests)" }
        if let big = r.requests.first(where: { $0.coverage.count > Limits.maxSpansPerRequest }) {
            return "request \(big.id.prefix(64)) has \(big.coverage.count) coverage spans; at most \(Limits.maxSpansPerRequest)"
        }
        var texts = [r.device, r.health.recording, r.health.version, r.health.lastError ?? "", r.health.camera ?? ""] + r.requests.flatMap { [$0.id, $0.error ?? ""] }
        if let e = r.evidence { texts += [e.publicKey, e.hash ?? ""] }
        if let c = r.chain {
            if c.count > Limits.maxChainRecords { return "the heartbeat carries \(c.count) chain records; at most \(Limits.maxChainRecords)" }
            texts += c.map(\.signature)
        }
        if texts.contains(where: { $0.count > Limits.maxTextCharacters }) { return "a text field is longer than \(Limits.maxTextCharacters) characters" }
        return nil
    }

    /// The box's health, as `commune devices` shows it.
    public struct Health: Sendable, Codable, Equatable {
        /// "recording", "waiting_for_camera", "starting", "storage_error", ... (RecorderHealth.State).
        public var recording: String
        public var lastError: String?
        public var oldest: Timestamp?
        public var newest: Timestamp?
        public var ringBytes: Int64
        public var budgetBytes: Int64
        public var freeBytes: Int64
        public var pinnedBytes: Int64
        public var pinnedCapBytes: Int64
        public var queuedSegments: Int
        public var clockSynchronized: Bool
        public var version: String
        public var sentAt: Timestamp
        /// Segment files found damaged on the card and quarantined (nil from older boxes).
        public var damagedSegments: Int?
        /// The box's camera, how often it sends a heartbeat, and how fast its current upload
        /// goes (nil from older boxes, and the rate when nothing is uploading).
        public var camera: String?
        public var heartbeatSeconds: Int?
        public var uploadBytesPerSecond: Double?

        public init(recording: String, lastError: String? = nil, oldest: Timestamp? = nil, newest: Timestamp? = nil,
                    ringBytes: Int64 = 0, budgetBytes: Int64 = 0, freeBytes: Int64 = 0, pinnedBytes: Int64 = 0,
                    pinnedCapBytes: Int64 = 0, queuedSegments: Int = 0, clockSynchronized: Bool = false,
                    version: String, sentAt: Timestamp, damagedSegments: Int? = nil, camera: String? = nil,
                    heartbeatSeconds: Int? = nil, uploadBytesPerSecond: Double? = nil) {
            self.recording = recording
            self.lastError = lastError
            self.oldest = oldest
            self.newest = newest
            self.ringBytes = ringBytes
            self.budgetBytes = budgetBytes
            self.freeBytes = freeBytes
            self.pinnedBytes = pinnedBytes
            self.pinnedCapBytes = pinnedCapBytes
            self.queuedSegments = queuedSegments
            self.clockSynchronized = clockSynchronized
            self.version = version
            self.sentAt = sentAt
            self.damagedSegments = damagedSegments
            self.camera = camera
            self.heartbeatSeconds = heartbeatSeconds
            self.uploadBytesPerSecond = uploadBytesPerSecond
        }

        enum CodingKeys: String, CodingKey {
            case recording, oldest, newest, version
            case lastError = "last_error", ringBytes = "ring_bytes", budgetBytes = "budget_bytes", freeBytes = "free_bytes"
            case pinnedBytes = "pinned_bytes", pinnedCapBytes = "pinned_cap_bytes", queuedSegments = "queued_segments"
            case clockSynchronized = "clock_synchronized", sentAt = "sent_at", damagedSegments = "damaged_segments"
            case camera, heartbeatSeconds = "heartbeat_seconds", uploadBytesPerSecond = "upload_bytes_per_second"
        }

        /// Every number bounded where it is read (`Bounds`; README, "Limits"): the commune
        /// stores and draws only health a real box could have (issue 22: ±1e300 rates and
        /// 2^62-byte cards crashed the box list on every view).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            recording = try c.decode(String.self, forKey: .recording)
            lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
            oldest = try c.decodeIfPresent(Timestamp.self, forKey: .oldest)
            newest = try c.decodeIfPresent(Timestamp.self, forKey: .newest)
            ringBytes = try c.decode(Int64.self, forKey: .ringBytes, in: Bounds.bytes)
            budgetBytes = try c.decode(Int64.self, forKey: .budgetBytes, in: Bounds.bytes)
            freeBytes = try c.decode(Int64.self, forKey: .freeBytes, in: Bounds.bytes)
            pinnedBytes = try c.decode(Int64.self, forKey: .pinnedBytes, in: Bounds.bytes)
            pinnedCapBytes = try c.decode(Int64.self, forKey: .pinnedCapBytes, in: Bounds.bytes)
            queuedSegments = try c.decode(Int.self, forKey: .queuedSegments, in: Bounds.count)
            clockSynchronized = try c.decode(Bool.self, forKey: .clockSynchronized)
            version = try c.decode(String.self, forKey: .version)
            sentAt = try c.decode(Timestamp.self, forKey: .sentAt)
            damagedSegments = try c.decodeIfPresent(Int.self, forKey: .damagedSegments, in: Bounds.count)
            camera = try c.decodeIfPresent(String.self, forKey: .camera)
            heartbeatSeconds = try c.decodeIfPresent(Int.self, forKey: .heartbeatSeconds, in: Bounds.heartbeatSeconds)
            uploadBytesPerSecond = try c.decodeIfPresent(Double.self, forKey: .uploadBytesPerSecond, in: Bounds.bytesPerSecond)
        }
    }

    /// The box's answer to one request: what it has of the range, or why it refused it.
    public struct RequestReport: Sendable, Codable, Equatable {
        public var id: String
        public var coverage: [CoverageSpan]
        /// Set when the box could not take the request (e.g. the pin cap): the operator reads it.
        public var error: String?

        public init(id: String, coverage: [CoverageSpan], error: String? = nil) {
            self.id = id
            self.coverage = coverage
            self.error = error
        }
    }

    /// What the server answers.
    public struct Reply: Sendable, Codable, Equatable {
        public var requests: [FootageRequest]
        /// The commune's countersignature of the head the box sent (nil when it sent none, or
        /// its key is refused: then `keyProblem` says why and what an operator must do).
        public var countersign: Countersign?
        /// The commune's binding of the key this box sent (issue 23), which its bundles carry.
        public var keyBinding: KeyBinding?
        public var keyProblem: String?
        /// Chain records the commune wants for a requested range's proof; the next heartbeat
        /// carries as many of them as fit (`Report.chain`).
        public var chainWanted: ChainRange?
        /// The minute from which the commune wants activity next (the newest it holds, which may
        /// have been partial); nil: the last day.
        public var activityFrom: Timestamp?
        /// A release for this box to install (issue 24), when its rollout's wave is open for it.
        public var update: FleetUpdate.Offer?
        /// A change of the box's settings (issue 24, item 7), newer than any the box has seen.
        public var settings: RemoteSettings.Offer?

        public init(requests: [FootageRequest], countersign: Countersign? = nil, keyProblem: String? = nil, chainWanted: ChainRange? = nil,
                    activityFrom: Timestamp? = nil, keyBinding: KeyBinding? = nil, update: FleetUpdate.Offer? = nil,
                    settings: RemoteSettings.Offer? = nil) {
            self.update = update
            self.settings = settings
            self.requests = requests
            self.countersign = countersign
            self.keyBinding = keyBinding
            self.keyProblem = keyProblem
            self.chainWanted = chainWanted
            self.activityFrom = activityFrom
        }

        enum CodingKeys: String, CodingKey {
            case requests, countersign, keyBinding = "key_binding", keyProblem = "key_problem", chainWanted = "chain_wanted", activityFrom = "activity_from"
            case update, settings
        }

        /// At most `Limits.maxRequests` requests (the commune sends the oldest open ones first)
        /// and a key problem of at most `Limits.maxTextCharacters`: an answer of 2 000 requests
        /// once cost a box 1.5 cores and its heartbeats (issue 22).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            requests = try c.decode([FootageRequest].self, forKey: .requests, maxCount: Limits.maxRequests)
            countersign = try c.decodeIfPresent(Countersign.self, forKey: .countersign)
            keyBinding = try c.decodeIfPresent(KeyBinding.self, forKey: .keyBinding)
            keyProblem = try c.decodeIfPresent(String.self, forKey: .keyProblem, maxCharacters: Limits.maxTextCharacters)
            chainWanted = try c.decodeIfPresent(ChainRange.self, forKey: .chainWanted)
            activityFrom = try c.decodeIfPresent(Timestamp.self, forKey: .activityFrom)
            update = try c.decodeIfPresent(FleetUpdate.Offer.self, forKey: .update)
            settings = try c.decodeIfPresent(RemoteSettings.Offer.self, forKey: .settings)
        }
    }
}

/// An operator's request for a device's footage over a time range.
public struct FootageRequest: Sendable, Codable, Equatable {
    public var id: String
    /// Nil: the box's (only) camera.
    public var camera: String?
    public var from: Timestamp
    public var to: Timestamp
    public var reason: String?

    public init(id: String, camera: String? = nil, from: Timestamp, to: Timestamp, reason: String? = nil) {
        self.id = id
        self.camera = camera
        self.from = from
        self.to = to
        self.reason = reason
    }

    /// The longest range a request may span (the box's flag bound), and its reason.
    public static let maxSeconds: Int64 = 31 * 86_400
    public static let maxReasonCharacters = 1000

    enum CodingKeys: String, CodingKey { case id, camera, from, to, reason }

    /// A plain id and camera, a range of at most `maxSeconds` that ends after it starts, and a
    /// bounded reason: what the box flags is checked where the commune's answer is read.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        guard PlainName.isValid(id) else { throw DecodingError.dataCorruptedError(forKey: .id, in: c, debugDescription: PlainName.problem(id, what: "request id")) }
        camera = try c.decodeIfPresent(String.self, forKey: .camera)
        if let camera, !PlainName.isValid(camera) {
            throw DecodingError.dataCorruptedError(forKey: .camera, in: c, debugDescription: PlainName.problem(camera, what: "camera"))
        }
        from = try c.decode(Timestamp.self, forKey: .from)
        to = try c.decode(Timestamp.self, forKey: .to)
        guard to > from, to.milliseconds(since: from) <= Self.maxSeconds * 1000 else {
            throw DecodingError.dataCorruptedError(forKey: .to, in: c, debugDescription: "the range \(from)–\(to) is empty or longer than 31 days")
        }
        reason = try c.decodeIfPresent(String.self, forKey: .reason, maxCharacters: Self.maxReasonCharacters)
    }
}

/// One stretch of a requested range and what became of it.
public struct CoverageSpan: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        /// The commune has it, verified.
        case uploaded
        /// Recorded (or still being recorded) and on its way.
        case pending
        /// The box was not recording then (camera down, power off, before it was installed).
        case notRecorded = "not_recorded"
        /// Recorded, but overwritten by the ring before it was requested.
        case evicted
    }

    public var from: Timestamp
    public var to: Timestamp
    public var status: Status

    public init(from: Timestamp, to: Timestamp, status: Status) {
        self.from = from
        self.to = to
        self.status = status
    }
}

public enum Coverage {
    /// Paints a range: it starts as `base`; each span in `layers` (later ones on top) sets the
    /// status of what it overlaps. Returns ordered, non-overlapping spans covering exactly
    /// `from..<to`, neighbours with the same status merged.
    public static func paint(from: Timestamp, to: Timestamp, base: CoverageSpan.Status,
                             layers: [CoverageSpan]) -> [CoverageSpan] {
        guard to > from else { return [] }
        let visible = layers.filter { $0.to > from && $0.from < to && $0.to > $0.from }
        var cuts = Set([from.milliseconds, to.milliseconds])
        for l in visible {
            cuts.insert(max(l.from, from).milliseconds)
            cuts.insert(min(l.to, to).milliseconds)
        }
        let points = cuts.sorted()
        func index(_ ms: Int64) -> Int {  // binary search: every cut is in `points`
            var lo = 0, hi = points.count - 1
            while lo < hi { let mid = (lo + hi) / 2; if points[mid] < ms { lo = mid + 1 } else { hi = mid } }
            return lo
        }
        // Top layer first; each elementary stretch takes the first (topmost) layer that reaches
        // it. `nextFree` (union-find) skips painted stretches, so the work is O(n log n), not
        // O(n²) (9 000 spans took 23 s; issue 11).
        var painted = [CoverageSpan.Status?](repeating: nil, count: points.count - 1)
        var nextFree = Array(0...painted.count)
        func find(_ i: Int) -> Int {
            var root = i
            while nextFree[root] != root { root = nextFree[root] }
            var j = i
            while nextFree[j] != root { let n = nextFree[j]; nextFree[j] = root; j = n }
            return root
        }
        for l in visible.reversed() {
            let b = index(min(l.to, to).milliseconds)
            var j = find(index(max(l.from, from).milliseconds))
            while j < b {
                painted[j] = l.status
                nextFree[j] = j + 1
                j = find(j + 1)
            }
        }
        var out: [CoverageSpan] = []
        for k in 0..<painted.count {
            let (a, b) = (points[k], points[k + 1])
            let status = painted[k] ?? base
            if let last = out.last, last.status == status, last.to.milliseconds == a {
                out[out.count - 1].to = Timestamp(milliseconds: b)
            } else {
                out.append(CoverageSpan(from: Timestamp(milliseconds: a), to: Timestamp(milliseconds: b), status: status))
            }
        }
        return out
    }

    /// At most `maximum` spans covering the same range: while there are more, each pair of
    /// neighbours becomes one span with the status of the longer (a box whose camera flapped
    /// all day reports its coverage in bounded bytes; the commune paints its own clips on top).
    public static func coarsened(_ spans: [CoverageSpan], to maximum: Int = Heartbeat.Limits.maxSpansPerRequest) -> [CoverageSpan] {
        var spans = spans
        while spans.count > max(1, maximum) {
            var merged: [CoverageSpan] = []
            merged.reserveCapacity(spans.count / 2 + 1)
            var i = 0
            while i < spans.count {
                if i + 1 < spans.count {
                    let (a, b) = (spans[i], spans[i + 1])
                    let longer = a.to.seconds(since: a.from) >= b.to.seconds(since: b.from) ? a : b
                    merged.append(CoverageSpan(from: a.from, to: b.to, status: longer.status))
                    i += 2
                } else {
                    merged.append(spans[i])
                    i += 1
                }
            }
            spans = merged
        }
        return spans
    }

    /// True when nothing in the coverage is still on its way.
    public static func isSettled(_ spans: [CoverageSpan]) -> Bool {
        !spans.isEmpty && !spans.contains { $0.status == .pending }
    }
}

extension Heartbeat {
    /// JSON as the wire carries it (sorted keys so logs and tests are stable).
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
