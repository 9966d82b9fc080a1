import Activity
import Evidence

/// One segment file as the index knows it. `path` is relative to the storage root.
public struct Segment: Sendable, Codable, Equatable {
    public var id: Int64
    public var camera: String
    public var path: String
    public var start: Timestamp
    public var end: Timestamp
    /// CLOCK_BOOTTIME at the segment's start, in nanoseconds, with the boot it belongs to: the
    /// wall clock can be re-derived from these when the clock is set after recording.
    public var monotonicStartNanos: Int64
    public var bootID: String
    public var clockSynchronized: Bool
    public var bytes: Int64
    public var sha256: String
    public var codec: String
    public var flagged: Bool
    public var uploaded: Bool
    /// Rebuilt by recovery or reindex (a torn file cut back, or an orphan indexed).
    public var recovered: Bool

    public var durationSeconds: Double { end.seconds(since: start) }

    enum CodingKeys: String, CodingKey {
        case id, camera, path, start, end, bytes, sha256, codec, flagged, uploaded, recovered
        case monotonicStartNanos = "monotonic_start_ns"
        case bootID = "boot_id"
        case clockSynchronized = "clock_synchronized"
    }
}

/// A time the camera was not recorded, and why.
public struct Gap: Sendable, Codable, Equatable {
    public var camera: String
    public var start: Timestamp
    public var end: Timestamp
    public var reason: String

    public init(camera: String, start: Timestamp, end: Timestamp, reason: String) {
        self.camera = camera
        self.start = start
        self.end = end
        self.reason = reason
    }
}

/// What the recorder knows when a segment starts. It is written into the file itself (as the
/// MP4 comment) so the index can be rebuilt from the files alone.
public struct SegmentOrigin: Sendable, Equatable {
    public var camera: String
    public var start: Timestamp
    public var monotonicNanos: Int64
    public var bootID: String
    public var clockSynchronized: Bool
    public var codec: String

    public init(camera: String, start: Timestamp, monotonicNanos: Int64, bootID: String, clockSynchronized: Bool, codec: String) {
        self.camera = camera
        self.start = start
        self.monotonicNanos = monotonicNanos
        self.bootID = bootID
        self.clockSynchronized = clockSynchronized
        self.codec = codec
    }

    /// `junction/1 camera=cam1 start=1764380866123 mono=123 boot=… synced=1 codec=h264`
    public var comment: String {
        "junction/1 camera=\(camera) start=\(start.milliseconds) mono=\(monotonicNanos) boot=\(bootID) synced=\(clockSynchronized ? 1 : 0) codec=\(codec)"
    }

    public init?(comment: String) {
        guard comment.hasPrefix("junction/1 ") else { return nil }
        var fields: [Substring: Substring] = [:]
        for part in comment.split(separator: " ").dropFirst() {
            guard let eq = part.firstIndex(of: "=") else { continue }
            fields[part[..<eq]] = part[part.index(after: eq)...]
        }
        guard let camera = fields["camera"], let start = fields["start"].flatMap({ Int64($0) }),
              let mono = fields["mono"].flatMap({ Int64($0) }), let boot = fields["boot"] else { return nil }
        self.init(camera: String(camera), start: Timestamp(milliseconds: start), monotonicNanos: mono,
                  bootID: String(boot), clockSynchronized: fields["synced"] == "1", codec: String(fields["codec"] ?? "unknown"))
    }
}

/// A segment file the recorder has finished and made durable, ready for the index.
public struct FinishedSegment: Sendable, Equatable {
    public var path: String
    public var origin: SegmentOrigin
    public var bytes: Int64
    public var sha256: String
    public var durationSeconds: Double
    /// What the recorder hashed as it wrote (nil: the ring reads the file to seal it).
    public var hashed: PieceHasher?
    /// False when the recorder left the file's last `fdatasync` to the ring (which appends the
    /// seal first and syncs once); the ring makes it durable before indexing it.
    public var durable: Bool
    /// The segment's activity summary (issue 14), ready when the activity worker has passed its
    /// end: the ring waits for it a bounded time, then seals and indexes it with the segment.
    public var activity: PendingActivity?

    public init(path: String, origin: SegmentOrigin, bytes: Int64, sha256: String, durationSeconds: Double, hashed: PieceHasher? = nil,
                durable: Bool = true, activity: PendingActivity? = nil) {
        self.path = path
        self.origin = origin
        self.bytes = bytes
        self.sha256 = sha256
        self.durationSeconds = durationSeconds
        self.hashed = hashed
        self.durable = durable
        self.activity = activity
    }

    public static func == (a: FinishedSegment, b: FinishedSegment) -> Bool {
        a.path == b.path && a.origin == b.origin && a.bytes == b.bytes && a.sha256 == b.sha256 && a.durationSeconds == b.durationSeconds
            && a.durable == b.durable
    }
}
