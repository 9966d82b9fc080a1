import PropertyBased

/// The values an attacker sends (issue 22), for property tests. Every generator here mixes the
/// named extremes (picked often, so each test meets them) with the whole range of the type.
///
/// Ranges, as the issue asks them written down:
/// - `int64`: Int64's ends and their neighbours, ±2^53 and 2^53±1 (the last exact Double
///   integers), ±2^62, ±1, 0 (one in two), else any Int64 (one in four) or −10^6…10^6.
/// - `double`: ±1e300, ±1e-300, ±0, the subnormals (±leastNonzeroMagnitude), the least normal,
///   ±greatestFiniteMagnitude, ±∞, NaN, 2^53±1, 2^63 (one in two), else any finite Double
///   of magnitude up to 1e308 or −10^6…10^6.
/// - `jsonNumber`: the texts that carry those over JSON (where NaN and ∞ cannot be written):
///   every Int64 extreme, 2^63 and −2^63−1 (one past Int64), 1e300, -1e300, 1e-300, -0, 0.0,
///   4.9e-324, 1.7976931348623157e308, 9007199254740993, and any generated Int64 or Double.
public enum Extremes {
    public static let int64: [Int64] = [
        .min, .min + 1, -(1 << 62), -(1 << 53) - 1, -(1 << 53), -(1 << 53) + 1, -1, 0, 1,
        (1 << 53) - 1, 1 << 53, (1 << 53) + 1, 1 << 62, .max - 1, .max,
    ]
    public static let doubles: [Double] = [
        0, -0.0, 1, -1, 1e-300, -1e-300, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude,
        1e300, -1e300, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, -.infinity, .nan,
        9_007_199_254_740_991, 9_007_199_254_740_993, 9.223372036854775807e18, -9.223372036854775808e18,
    ]
    public static let jsonNumbers: [String] = int64.map(String.init) + [
        "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e300", "-1e300", "1e-300", "-1e-300",
        "-0", "0.0", "-0.0", "4.9e-324", "1.7976931348623157e308", "9007199254740993", "1.5", "1e3",
    ]
}

/// A seeded choice among the forms above; `PropertyBased` drives it with its own seed, so a
/// failure prints the seed that reproduces it.
public enum HostileGen {
    public static var int64: Generator<Int64, Shrink.None<Int64>> {
        Generator(run: { rng in
            switch rng.next() % 4 {
            case 0, 1: Extremes.int64[Int(rng.next() % UInt64(Extremes.int64.count))]
            case 2: Int64(bitPattern: rng.next())
            default: Int64(bitPattern: rng.next() % 2_000_001) - 1_000_000
            }
        })
    }

    public static var double: Generator<Double, Shrink.None<Double>> {
        Generator(run: { rng in
            switch rng.next() % 4 {
            case 0, 1: return Extremes.doubles[Int(rng.next() % UInt64(Extremes.doubles.count))]
            case 2:
                let d = Double(bitPattern: rng.next())
                return d.isFinite ? d : 1e308
            default: return Double(Int64(bitPattern: rng.next() % 2_000_001) - 1_000_000) / 7
            }
        })
    }

    /// A JSON number text: an extreme one half of the time, else a generated Int64 or Double.
    public static var jsonNumber: Generator<String, Shrink.None<String>> {
        Generator(run: { rng in
            switch rng.next() % 4 {
            case 0, 1: return Extremes.jsonNumbers[Int(rng.next() % UInt64(Extremes.jsonNumbers.count))]
            case 2: return String(Int64(bitPattern: rng.next()))
            default:
                let d = Double(bitPattern: rng.next())
                return d.isFinite ? "\(d)" : "1e308"
            }
        })
    }
}

/// A picture a preview accepts: a JPEG's start, a frame header (SOF0) declaring `width` ×
/// `height`, `seed` bytes to make it `n` bytes long (at least 17), and a JPEG's end.
public func fakeJPEG(_ n: Int, seed: UInt8 = 7, width: Int = 320, height: Int = 180) -> [UInt8] {
    precondition(n >= 17)
    let sof: [UInt8] = [0xFF, 0xC0, 0x00, 0x0B, 0x08, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 0x01, 0x01, 0x11, 0x00]
    return [0xFF, 0xD8] + sof + [UInt8](repeating: seed, count: n - 17) + [0xFF, 0xD9]
}
