import Wire

/// The commune's settings for one box (issue 24, item 7): a TOML fragment of the keys it sets,
/// laid over the installer's junction.toml key by key. The installer's file stays whole on the
/// box; the effective settings are that file with these keys set over it.
///
/// The commune may set what it has reason to change from afar: the camera's address and how it
/// is read, activity and motion, the upload, the log level and the time zone. It may not take
/// the box away from itself (`[server]`), rename it or its files (`device.id`, `camera.id`), or
/// touch what guards the card (`[storage]`) and the updates (`[update]`): those stay the
/// installer's.
public struct SettingsOverlay: Sendable, Equatable {
    public var revision: Int64
    public var text: String

    public init(revision: Int64, text: String) {
        self.revision = revision
        self.text = text
    }

    /// How errors name it (instead of a file name).
    public var name: String { "the commune's settings (revision \(revision))" }

    public static let allowedKeys: Set<String> = [
        "device.time_zone",
        "camera.url", "camera.transport", "camera.stall_seconds", "camera.connect_timeout_seconds",
        "log.level",
    ]
    /// Whole sections the commune may set (`camera.options.` is the video library's options).
    public static let allowedPrefixes = ["camera.options.", "activity.", "motion.", "upload."]

    public static func isAllowed(_ key: String) -> Bool {
        allowedKeys.contains(key) || allowedPrefixes.contains { key.hasPrefix($0) }
    }

    /// The fragment alone: valid TOML of this reader, at most `maxBytes`, at least one key, and
    /// only keys the commune may set. (Whether the values hold is known only over a box's file.)
    public func document() throws(ConfigError) -> TOMLDocument {
        guard text.utf8.count <= Self.maxBytes else {
            throw ConfigError(file: name, line: nil, key: nil, message: "longer than \(Self.maxBytes) bytes: send only the keys that change")
        }
        let doc: TOMLDocument
        do { doc = try TOMLDocument(parsing: text) } catch {
            throw ConfigError(file: name, line: error.line, key: nil, message: error.message)
        }
        guard !doc.entries.isEmpty else {
            throw ConfigError(file: name, line: nil, key: nil, message: "sets no key: send the keys that change, e.g.\n  [upload]\n  max_kbps = 512")
        }
        if let (key, value) = doc.entries.first(where: { !Self.isAllowed($0.key) }) {
            throw ConfigError(file: name, line: value.line, key: key,
                              message: "the commune may not set this key (only the installer's junction.toml on the card may): the commune may set camera.url, camera.transport, camera.stall_seconds, camera.connect_timeout_seconds, [camera.options], [activity], [motion], [upload], log.level and device.time_zone")
        }
        return doc
    }

    /// Bound (README, "Limits"): the heartbeat's.
    public static var maxBytes: Int { RemoteSettings.maxTOMLBytes }
}

extension JunctionConfiguration {
    /// The installer's file at `path` with the commune's settings over it (nil: the file alone).
    public static func load(path: String, overlay: SettingsOverlay?) throws(ConfigError) -> JunctionConfiguration {
        try parse(try ConfigFile.read(path: path), file: path, overlay: overlay)
    }

    /// Errors in a key the overlay sets name the overlay and its line; others name the file.
    public static func parse(_ text: String, file: String, overlay: SettingsOverlay?) throws(ConfigError) -> JunctionConfiguration {
        guard let overlay else { return try parse(text, file: file) }
        guard text.utf8.count <= ConfigFile.maxBytes else {
            throw ConfigError(file: file, line: nil, key: nil, message: ConfigFile.tooLarge)
        }
        let base: TOMLDocument
        do { base = try TOMLDocument(parsing: text) } catch {
            throw ConfigError(file: file, line: error.line, key: nil, message: error.message)
        }
        let over = try overlay.document()
        do {
            return try read(base.overlaid(by: over), file: file)
        } catch {
            var e = error
            if let key = e.key, over[key] != nil { e.file = overlay.name }
            throw e
        }
    }
}
