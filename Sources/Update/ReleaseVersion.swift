/// A release's version as the fleet compares them: one to four dot-separated numbers
/// (`1.4.2`), each at most six digits, optionally followed by `-` and a label that is shown but
/// never compared (`1.4.2-rc1` equals `1.4.2` in order; the label is for people). Anything else
/// is refused where it is read, so a bundle cannot smuggle a version that sorts wrongly.
public struct ReleaseVersion: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let numbers: [Int]
    public let label: String?

    public static let maxComponents = 4
    public static let maxDigits = 6
    public static let maxLabel = 32

    public init?(_ text: String) {
        guard text.utf8.count <= 64 else { return nil }
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let head = parts[0]
        if parts.count == 2 {
            let label = parts[1]
            guard !label.isEmpty, label.utf8.count <= Self.maxLabel,
                  label.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || $0 == 0x2e || $0 == 0x2d })
            else { return nil }
            self.label = String(label)
        } else {
            label = nil
        }
        let fields = head.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...Self.maxComponents).contains(fields.count) else { return nil }
        var numbers: [Int] = []
        for f in fields {
            guard (1...Self.maxDigits).contains(f.utf8.count), f.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(f) else { return nil }
            numbers.append(n)
        }
        self.numbers = numbers
    }

    public var description: String { numbers.map(String.init).joined(separator: ".") + (label.map { "-" + $0 } ?? "") }

    /// Numbers compared in order, a missing one counting as 0 (`1.4` == `1.4.0`).
    public static func < (a: ReleaseVersion, b: ReleaseVersion) -> Bool {
        for i in 0..<max(a.numbers.count, b.numbers.count) {
            let x = i < a.numbers.count ? a.numbers[i] : 0, y = i < b.numbers.count ? b.numbers[i] : 0
            if x != y { return x < y }
        }
        return false
    }

    public static func == (a: ReleaseVersion, b: ReleaseVersion) -> Bool { !(a < b) && !(b < a) }
    public func hash(into h: inout Hasher) {
        var n = numbers
        while n.last == 0 { n.removeLast() }
        h.combine(n)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let v = ReleaseVersion(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text.prefix(64))' is not a release version (1.4.2)"))
        }
        self = v
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
