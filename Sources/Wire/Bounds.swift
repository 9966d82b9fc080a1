/// Numbers from outside (issue 22): a heartbeat's health, a commune's answer, a form, a chain
/// record, a bundle. Each is bounded *where it is decoded*, so nothing behind a decoder ever sees
/// an absurd value; and the arithmetic that meets them saturates, so a value at a bound still
/// cannot trap. The bounds are written down in README, "Limits", and tested at the bound.
public enum Bounds {
    /// Bytes of a card, a ring, a file or a queue: 0 to 2^50 (1 PiB), far past any card or disk
    /// a box or a commune has, and far below where `× 100` or a sum of a thousand of them
    /// overflows 64 bits.
    public static let bytes: ClosedRange<Int64> = 0...(1 << 50)
    /// Things a box counts (segments queued or damaged): 0 to 10^9.
    public static let count: ClosedRange<Int> = 0...1_000_000_000
    /// A transfer rate in bytes a second: 0 to 10^10 (80 Gbit/s).
    public static let bytesPerSecond: ClosedRange<Double> = 0...1e10
    /// A chain record's sequence number: 1 to 2^53 (JSON's exact integers; a box sealing ten
    /// records a second would need 28 million years).
    public static let sequence: ClosedRange<Int64> = 1...(1 << 53)
    /// How often a box says it sends a heartbeat, in seconds: 1 s to a day.
    public static let heartbeatSeconds: ClosedRange<Int> = 1...86_400
    /// CLOCK_BOOTTIME in nanoseconds: 0 to 2^62 (146 years of uptime).
    public static let bootNanoseconds: ClosedRange<Int64> = 0...(1 << 62)

    /// A rate the box measured, made one the commune takes (a smoothed rate over a tiny
    /// interval can be huge; NaN is 0).
    public static func clamp(rate: Double) -> Double {
        rate.isNaN ? 0 : min(max(rate, bytesPerSecond.lowerBound), bytesPerSecond.upperBound)
    }

    /// "1.5 outside 0…1125899906842624": what a refusal says.
    public static func outside<T>(_ value: T, _ range: ClosedRange<T>) -> String {
        "\(value) is outside \(range.lowerBound)…\(range.upperBound)"
    }
}

extension KeyedDecodingContainer {
    /// An integer that must lie in `range`: refused where it is decoded, with the key and the bound.
    public func decode<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key, in range: ClosedRange<T>) throws -> T {
        let v = try decode(T.self, forKey: key)
        guard range.contains(v) else { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: Bounds.outside(v, range)) }
        return v
    }

    public func decodeIfPresent<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key, in range: ClosedRange<T>) throws -> T? {
        guard let v = try decodeIfPresent(T.self, forKey: key) else { return nil }
        guard range.contains(v) else { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: Bounds.outside(v, range)) }
        return v
    }

    /// A finite number in `range` (NaN and infinities are in no range).
    public func decode(_ type: Double.Type, forKey key: Key, in range: ClosedRange<Double>) throws -> Double {
        let v = try decode(Double.self, forKey: key)
        guard range.contains(v) else { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: Bounds.outside(v, range)) }
        return v
    }

    public func decodeIfPresent(_ type: Double.Type, forKey key: Key, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = try decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard range.contains(v) else { throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: Bounds.outside(v, range)) }
        return v
    }

    /// A text of at most `limit` characters.
    public func decode(_ type: String.Type, forKey key: Key, maxCharacters limit: Int) throws -> String {
        let v = try decode(String.self, forKey: key)
        guard v.count <= limit else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "a text of \(v.count) characters (at most \(limit))")
        }
        return v
    }

    public func decodeIfPresent(_ type: String.Type, forKey key: Key, maxCharacters limit: Int) throws -> String? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decode(String.self, forKey: key, maxCharacters: limit)
    }

    /// A list of at most `limit` elements.
    public func decode<T: Decodable>(_ type: [T].Type, forKey key: Key, maxCount limit: Int) throws -> [T] {
        var list = try nestedUnkeyedContainer(forKey: key)
        if let n = list.count, n > limit {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "a list of \(n) (at most \(limit))")
        }
        var out: [T] = []
        while !list.isAtEnd { out.append(try list.decode(T.self)) }
        return out
    }

    public func decodeIfPresent<T: Decodable>(_ type: [T].Type, forKey key: Key, maxCount limit: Int) throws -> [T]? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try decode([T].self, forKey: key, maxCount: limit)
    }
}

extension DecodingError {
    /// A decoding failure in a line a person can act on: where (the JSON path) and what.
    public var plain: String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().drop { $0 == "." }.description
        }
        switch self {
        case .dataCorrupted(let c): return (c.codingPath.isEmpty ? "" : path(c.codingPath) + ": ") + c.debugDescription
        case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])) is missing"
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)): not \(t) (\(c.debugDescription))"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)): no \(t)"
        @unknown default: return "\(self)"
        }
    }
}

extension FixedWidthInteger {
    /// `self + other`, or the nearest end of the type when it would overflow.
    @inlinable public func adding(saturating other: Self) -> Self {
        let (r, overflow) = addingReportingOverflow(other)
        return overflow ? (other < 0 ? .min : .max) : r
    }

    /// `self - other`, or the nearest end of the type when it would overflow.
    @inlinable public func subtracting(saturating other: Self) -> Self {
        let (r, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : r
    }

    /// `self × other`, or the nearest end of the type when it would overflow.
    @inlinable public func multiplied(saturating other: Self) -> Self {
        let (r, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) != (other < 0) ? .min : .max) : r
    }

    /// The integer nearest `value` toward zero, clamped to the type: NaN is 0, ±∞ and ±1e300
    /// the type's ends (`Int(d)` traps on all of those).
    @inlinable public init(saturating value: Double) {
        if value.isNaN { self = 0 }
        else if value >= Double(Self.max) { self = .max }
        else if value <= Double(Self.min) { self = .min }
        else { self = Self(value) }
    }
}
