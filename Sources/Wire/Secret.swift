/// A token or password: it prints as `<redacted>` in every log line, status file and dump
/// (`description`, `debugDescription`, `dump`, `Mirror`), so no debug level or crash report can
/// leak it. `reveal()` is the one way to the text, at the one place that sends it.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable,
    ExpressibleByStringLiteral {
    private let value: String

    public init(_ value: String) { self.value = value }
    public init(stringLiteral value: String) { self.value = value }

    /// The secret itself: only for the header or file that must carry it.
    public func reveal() -> String { value }
    public var isEmpty: Bool { value.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
