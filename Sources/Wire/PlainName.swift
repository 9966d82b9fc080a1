/// The one rule for names that become paths or JSON on either side (a device id, a camera id,
/// a clip's file name): 1–64 ASCII letters, digits, '-', '_' or '.', not starting with '.'.
/// So no name can climb out of a directory ("../"), hide a file, or need escaping anywhere.
public enum PlainName {
    public static let maxLength = 64

    public static func isValid(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= maxLength && !s.hasPrefix(".")
            && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    /// `s` (made of plain-name characters) if it has at most `max` characters, else its first
    /// `max − 9` and `-` and 8 hex digits of a hash of all of it: names made from other names
    /// (an evidence package from a 64-character device's, a file from a package's) stay plain
    /// and stay apart (issue 22: a package for a 25-character device was made, then 404).
    public static func fitted(_ s: String, max: Int = maxLength) -> String {
        guard s.utf8.count > max else { return s }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let tag = String(String(h, radix: 16).suffix(8))
        return String(decoding: s.utf8.prefix(Swift.max(0, max - 9)), as: UTF8.self) + "-" + String(repeating: "0", count: 8 - tag.count) + tag
    }

    /// What to tell a person whose name was refused.
    public static func problem(_ s: String, what: String = "name") -> String {
        "\(what) \"\(TerminalText.safe(String(s.prefix(80))))\" is not a plain name: use 1–64 letters, digits, '-', '_' or '.', not starting with '.', e.g. \"thaithuy-0042\""
    }
}

/// Text that came over the network or from a file, made safe for a terminal: control
/// characters (C0, DEL, C1: the escapes that move the cursor, retitle the window or rewrite
/// what was printed) become visible `\u{…}` escapes, and the text is cut at `limit` characters.
public enum TerminalText {
    public static func safe(_ s: String, limit: Int = 500) -> String {
        var out = ""
        var n = 0
        for scalar in s.unicodeScalars {
            if n >= limit { out += "…"; break }
            n += 1
            let v = scalar.value
            if v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                out += "\\u{" + String(v, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
