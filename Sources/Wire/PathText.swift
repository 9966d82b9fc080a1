/// Path and number text without Foundation's NSString and String(format:) (issue 25: the box
/// links FoundationEssentials only).
extension String {
    /// The last part of a path: "clips/a.mp4" → "a.mp4", "a.mp4" → "a.mp4", "/x/y/" → "y", "/" → "/".
    public var lastPathPart: String {
        var s = Substring(self)
        while s.count > 1, s.last == "/" { s = s.dropLast() }
        if s == "/" { return "/" }
        return String(s.split(separator: "/", omittingEmptySubsequences: false).last ?? s)
    }

    /// The path without its last part: "/x/y.key" → "/x", "y.key" → "", "/y" → "/".
    public var parentPath: String {
        var s = Substring(self)
        while s.count > 1, s.last == "/" { s = s.dropLast() }
        guard let slash = s.lastIndex(of: "/") else { return "" }
        if slash == s.startIndex { return "/" }
        var parent = s[..<slash]
        while parent.count > 1, parent.last == "/" { parent = parent.dropLast() }
        return String(parent)
    }

    /// A number with one decimal: 2.25 → "2.3", 3 → "3.0".
    public init(format1 value: Double) {
        guard value.isFinite else { self = String(value); return }
        let tenths = (value * 10).rounded()
        guard abs(tenths) < 1e15 else { self = String(value); return }
        let n = Int64(tenths)
        let whole = n / 10, frac = abs(n % 10)
        self = (n < 0 && whole == 0 ? "-" : "") + "\(whole).\(frac)"
    }
}
