import Media
import Ring

/// What the recorder is doing, for `junction status` and (later) the heartbeat. The daemon
/// writes it as `status.json` in the storage root every few seconds and on every change.
public struct RecorderHealth: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case starting, connecting, recording, reconnecting, stopped
    }

    public var state: State = .starting
    public var since: Timestamp
    public var device: String
    public var cameraID: String
    /// Camera URL with the password hidden.
    public var cameraURL: String
    public var stream: StreamInfo?
    /// Measured over the last few seconds.
    public var fps: Double = 0
    public var bitrateKbps: Double = 0
    public var lastPacketAt: Timestamp?
    /// The end of the last recorded second known to be on the card: a power cut now keeps
    /// everything up to here (each whole fragment is fdatasynced as it is written).
    public var durableUntil: Timestamp?
    /// Footage time of the newest packet minus its arrival time (seconds): footage times run
    /// late by this much (bounded by the re-anchoring at 1 s).
    public var timelineLeadSeconds: Double?
    public var reconnects: Int = 0
    public var gaps: Int = 0
    public var segmentsWritten: Int = 0
    public var droppedPackets: Int = 0
    public var openSegment: String?
    /// The last failure (camera or storage) and what to do about it.
    public var lastError: String?
    public var lastErrorCode: String?
    public var lastErrorAt: Timestamp?
    public var unusedCameraOptions: [String] = []
    public var storageError: String?
    public var clockSynchronized: Bool = false
    public var pid: Int32 = 0
    /// Motion flags (nil when `[motion]` is off).
    public var motion: MotionHealth?
    public var updatedAt: Timestamp
    public var version: String = JunctionVersion.current
    /// The kernel's boot id when this run started: a release on trial counts only segments of
    /// its own boot (this file lives on the data partition, which outlives every boot).
    public var bootID: String?

    public init(device: String, cameraID: String, cameraURL: String, now: Timestamp) {
        self.device = device
        self.cameraID = cameraID
        self.cameraURL = cameraURL
        self.since = now
        self.updatedAt = now
    }

    enum CodingKeys: String, CodingKey {
        case state, since, device, stream, fps, reconnects, gaps, pid, version, motion
        case cameraID = "camera_id", cameraURL = "camera_url", bitrateKbps = "bitrate_kbps"
        case lastPacketAt = "last_packet_at", durableUntil = "durable_until", timelineLeadSeconds = "timeline_lead_seconds", segmentsWritten = "segments_written", droppedPackets = "dropped_packets"
        case openSegment = "open_segment", lastError = "last_error", lastErrorCode = "last_error_code"
        case lastErrorAt = "last_error_at", unusedCameraOptions = "unused_camera_options"
        case storageError = "storage_error", clockSynchronized = "clock_synchronized", updatedAt = "updated_at"
        case bootID = "boot_id"
    }
}

/// What motion flags have done since the recorder started.
public struct MotionHealth: Sendable, Codable, Equatable {
    /// Flags made, and events the hourly cap left unflagged.
    public var flags: Int = 0
    public var capped: Int = 0
    public var lastFlagAt: Timestamp?
    /// Seconds motion flags pinned in the last hour, of `capSeconds`.
    public var usedSeconds: Double = 0
    public var capSeconds: Double

    public init(capSeconds: Double) { self.capSeconds = capSeconds }

    enum CodingKeys: String, CodingKey {
        case flags, capped
        case lastFlagAt = "last_flag_at", usedSeconds = "used_seconds", capSeconds = "cap_seconds"
    }
}

public enum JunctionVersion {
    public static let current = "0.1.0"
}
