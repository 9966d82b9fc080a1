/// A size in bytes as people write it in a config file: "24GB", "512MB", "1.5GiB", "4096".
/// Decimal units (kB, MB, GB, TB) are powers of 1000 as on a card's label; binary units
/// (KiB, MiB, GiB, TiB) are powers of 1024.
public struct ByteSize: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var bytes: UInt64

    public init(bytes: UInt64) { self.bytes = bytes }

    public init?(parsing text: String) {
        let trimmed = text.filter { $0 != " " && $0 != "_" }
        let number = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(number.count).lowercased()
        guard !number.isEmpty, let value = Double(number), value >= 0 else { return nil }
        let scale: Double
        switch unit {
        case "", "b": scale = 1
        case "k", "kb": scale = 1e3
        case "m", "mb": scale = 1e6
        case "g", "gb": scale = 1e9
        case "t", "tb": scale = 1e12
        case "kib": scale = 1024
        case "mib": scale = 1024 * 1024
        case "gib": scale = 1024 * 1024 * 1024
        case "tib": scale = 1024 * 1024 * 1024 * 1024
        default: return nil
        }
        let total = value * scale
        guard total < Double(UInt64.max / 2) else { return nil }
        bytes = UInt64(total.rounded())
    }

    public static func < (a: ByteSize, b: ByteSize) -> Bool { a.bytes < b.bytes }

    /// "1.2 GB", "640 MB", "12 kB", "512 B": decimal, three significant digits at most.
    public var description: String { Self.format(bytes) }

    public static func format(_ bytes: UInt64) -> String {
        let units: [(Double, String)] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
        for (scale, name) in units where Double(bytes) >= scale {
            let v = Double(bytes) / scale
            let rounded = v >= 100 ? (v).rounded() : v >= 10 ? (v * 10).rounded() / 10 : (v * 100).rounded() / 100
            var s = String(rounded)
            if s.hasSuffix(".0") { s.removeLast(2) }
            return "\(s) \(name)"
        }
        return "\(bytes) B"
    }
}
