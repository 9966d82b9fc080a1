import Wire

/// A segment's activity, compact (issue 14): every cell that moved during it, and for each
/// keyframe when it came and how busy its busiest cell was. Kept in the index beside the segment
/// and in its chain record, so `reindex` brings it back from the files and it is sealed with
/// them. About 50 bytes for a 10-s segment with a keyframe a second.
///
/// Binary form, version 1: `01`, the 18-byte `CellMask` of the whole segment, a big-endian
/// UInt16 count, then per keyframe a big-endian UInt16 of tenths of a second since the segment's
/// start, its score (0–255) and a flags byte (bit 0: lighting change). Written as lowercase hex
/// where text is needed.
public struct ActivitySummary: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Tenths of a second since the segment's start.
        public var deciseconds: UInt16
        public var score: UInt8
        public var lighting: Bool

        public init(deciseconds: UInt16, score: UInt8, lighting: Bool = false) {
            self.deciseconds = deciseconds
            self.score = score
            self.lighting = lighting
        }
    }

    public var cells: CellMask
    public var entries: [Entry]

    /// Bounds: a segment is at most `maxEntries` keyframes (an hour at 2 a second) — past it the
    /// rest are folded into the last entry, never dropped from `cells`.
    public static let maxEntries = 7200
    public static let version: UInt8 = 1

    public init(cells: CellMask = CellMask(), entries: [Entry] = []) {
        self.cells = cells
        self.entries = entries
    }

    /// The busiest keyframe's score.
    public var peak: UInt8 { entries.map(\.score).max() ?? 0 }

    /// Adds a keyframe seen `seconds` after the segment started.
    public mutating func add(_ o: Observation, secondsIntoSegment seconds: Double) {
        cells = cells.union(o.cells)
        let ds = UInt16(clamping: Int((max(0, seconds) * 10).rounded(.down)))
        if entries.count >= Self.maxEntries {
            entries[entries.count - 1].score = max(entries[entries.count - 1].score, o.score)
            entries[entries.count - 1].lighting = entries[entries.count - 1].lighting || o.lighting
            return
        }
        entries.append(Entry(deciseconds: ds, score: o.score, lighting: o.lighting))
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = [Self.version]
        out += cells.encoded
        out += [UInt8(entries.count >> 8), UInt8(truncatingIfNeeded: entries.count)]
        for e in entries {
            out += [UInt8(e.deciseconds >> 8), UInt8(truncatingIfNeeded: e.deciseconds), e.score, e.lighting ? 1 : 0]
        }
        return out
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        public var description: String { if case .malformed(let s) = self { return "activity summary: \(s)" }; return "" }
    }

    public init(encoded b: [UInt8]) throws(DecodeError) {
        guard b.count >= 21 else { throw .malformed("\(b.count) bytes, fewer than a header") }
        guard b[0] == Self.version else { throw .malformed("version \(b[0]) (this junction reads \(Self.version))") }
        guard let cells = CellMask(encoded: b[1..<19]) else { throw .malformed("a cell mask of the wrong size") }
        let count = Int(b[19]) << 8 | Int(b[20])
        guard count <= Self.maxEntries else { throw .malformed("\(count) keyframes (at most \(Self.maxEntries))") }
        guard b.count == 21 + count * 4 else { throw .malformed("\(b.count) bytes for \(count) keyframes (\(21 + count * 4) expected)") }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            let o = 21 + i * 4
            guard b[o + 3] <= 1 else { throw .malformed("keyframe \(i) has unknown flags \(b[o + 3])") }
            entries.append(Entry(deciseconds: UInt16(b[o]) << 8 | UInt16(b[o + 1]), score: b[o + 2], lighting: b[o + 3] == 1))
        }
        self.init(cells: cells, entries: entries)
    }

    public var hex: String { Wire.hex(encoded) }

    public init(hex: String) throws(DecodeError) {
        let n = hex.utf8.count
        guard n <= 2 * (21 + Self.maxEntries * 4) else { throw .malformed("hex of \(n) characters") }
        guard let bytes = bytes(fromHex: hex) else { throw .malformed("not hex") }
        try self.init(encoded: bytes)
    }
}
