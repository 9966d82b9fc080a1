/// What a camera sends, as the technician needs to know it.
public struct StreamInfo: Sendable, Equatable, Codable {
    public var videoCodec: String
    public var width: Int
    public var height: Int
    /// Frames per second the stream declares (0 when unknown).
    public var fps: Double
    /// The audio codec, when the camera sends audio.
    public var audioCodec: String?
    /// Whether that audio is kept in the segments (AAC is; G.711 and others MP4 cannot hold are not).
    public var audioKept: Bool
    /// Why audio is not kept, for `status`.
    public var audioNote: String?

    enum CodingKeys: String, CodingKey {
        case width, height, fps
        case videoCodec = "video_codec", audioCodec = "audio_codec", audioKept = "audio_kept", audioNote = "audio_note"
    }

    public init(videoCodec: String, width: Int, height: Int, fps: Double,
                audioCodec: String? = nil, audioKept: Bool = false, audioNote: String? = nil) {
        self.videoCodec = videoCodec
        self.width = width
        self.height = height
        self.fps = fps
        self.audioCodec = audioCodec
        self.audioKept = audioKept
        self.audioNote = audioNote
    }
}
