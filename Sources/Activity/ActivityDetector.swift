/// A keyframe's luma scaled down to a small grey picture (`Media.KeyframeDecoder` makes them):
/// all the activity index looks at. Row-major, one byte a pixel.
public struct GreyPicture: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    /// The size the recorder scales every keyframe to: 16:9, small enough to cost nothing next
    /// to the decode, large enough that a motorbike across a junction is a few pixels.
    public static let width = 64, height = 36

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height, "a grey picture is width × height bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// The grid activity is counted on: 16 × 9 cells over the picture (4 × 4 pixels each at 64 × 36).
/// A set of cells is a `CellMask`.
public enum ActivityGrid {
    public static let columns = 16, rows = 9
    public static let cells = columns * rows

    /// The cell a point of the picture (0–1 each way) falls in.
    public static func cell(x: Double, y: Double) -> Int {
        let c = min(columns - 1, max(0, Int(x * Double(columns))))
        let r = min(rows - 1, max(0, Int(y * Double(rows))))
        return r * columns + c
    }
}

/// A set of grid cells (bit `r * 16 + c`), 144 bits.
public struct CellMask: Sendable, Equatable, Hashable {
    public var low: UInt64 = 0, middle: UInt64 = 0, high: UInt64 = 0

    public init() {}

    public static let bytes = 18

    public subscript(cell: Int) -> Bool {
        get {
            switch cell {
            case 0..<64: return low >> UInt64(cell) & 1 == 1
            case 64..<128: return middle >> UInt64(cell - 64) & 1 == 1
            case 128..<ActivityGrid.cells: return high >> UInt64(cell - 128) & 1 == 1
            default: return false
            }
        }
        set {
            func set(_ word: inout UInt64, _ bit: Int) {
                if newValue { word |= 1 << UInt64(bit) } else { word &= ~(1 << UInt64(bit)) }
            }
            switch cell {
            case 0..<64: set(&low, cell)
            case 64..<128: set(&middle, cell - 64)
            case 128..<ActivityGrid.cells: set(&high, cell - 128)
            default: break
            }
        }
    }

    public var isEmpty: Bool { low == 0 && middle == 0 && high == 0 }
    public var count: Int { low.nonzeroBitCount + middle.nonzeroBitCount + high.nonzeroBitCount }
    public func union(_ o: CellMask) -> CellMask { var m = self; m.low |= o.low; m.middle |= o.middle; m.high |= o.high; return m }
    public func intersection(_ o: CellMask) -> CellMask { var m = self; m.low &= o.low; m.middle &= o.middle; m.high &= o.high; return m }

    /// 18 bytes, little-endian, low word first (the index and the seal box keep it so).
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.bytes)
        for (word, count) in [(low, 8), (middle, 8), (high, 2)] {
            for i in 0..<count { out.append(UInt8(truncatingIfNeeded: word >> UInt64(i * 8))) }
        }
        return out
    }

    public init?(encoded b: some Collection<UInt8>) {
        guard b.count == Self.bytes else { return nil }
        let a = Array(b)
        func word(_ from: Int, _ count: Int) -> UInt64 { (0..<count).reduce(UInt64(0)) { $0 | UInt64(a[from + $1]) << UInt64($1 * 8) } }
        low = word(0, 8)
        middle = word(8, 8)
        high = word(16, 2)   // 144 cells: 18 bytes hold exactly the grid
    }
}

/// What one keyframe showed against the background.
public struct Observation: Sendable, Equatable {
    /// Camera time of the keyframe, µs (the recorder's clock for this connection).
    public var microseconds: Int64
    /// The cells where something moved.
    public var cells: CellMask
    /// The busiest cell's share of changed pixels, 0–255.
    public var score: UInt8
    /// The whole picture changed at once (headlights, a cloud, dawn, the camera's night mode):
    /// the background was taken anew and nothing counted as movement.
    public var lighting: Bool

    public init(microseconds: Int64, cells: CellMask = CellMask(), score: UInt8 = 0, lighting: Bool = false) {
        self.microseconds = microseconds
        self.cells = cells
        self.score = score
        self.lighting = lighting
    }
}

/// Movement from keyframe to keyframe, cheaply: a running background per pixel, a thresholded
/// difference against it (after taking out the picture's overall brightness change), counted
/// per cell. A change over most of the picture at once is lighting, not movement: the
/// background is taken anew (as Frigate recalibrates), so headlights sweeping a still junction
/// at night or dawn coming up never read as activity. A pixel that stays different from the
/// background but still from keyframe to keyframe (a car that parked, or the ghost of one that
/// was there when the background was taken) joins the background after `absorbAfter` keyframes.
/// Pure Swift: no decode here.
public struct ActivityDetector: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// A pixel moved when it differs from the background by more than this (0–255).
        public var pixelThreshold: Int = 24
        /// A cell moved when at least this share of its pixels did.
        public var cellShare: Double = 0.12
        /// More than this share of the picture changed at once: lighting, recalibrate.
        public var lightingShare: Double = 0.45
        /// The picture's mean brightness moved by more than this: lighting, recalibrate.
        public var lightingMeanDelta: Double = 28
        /// How fast the background follows the picture where nothing moved (per keyframe)...
        public var learning: Float = 0.15
        /// ... and where something did (slower, so a passing shape does not smear into it).
        public var learningMoving: Float = 0.03
        /// Keyframes a pixel may stay changed yet still before it is background.
        public var absorbAfter: UInt8 = 4

        public init() {}
    }

    public let configuration: Configuration
    private var background: [Float] = []
    private var previous: [UInt8] = []
    private var still: [UInt8] = []
    /// Each pixel's grid cell, and each cell's pixel count, for the picture size in use.
    private var cellOf: [UInt8] = []
    private var cellPixels: [Int] = []
    private var size = (width: 0, height: 0)
    private var backgroundMean: Double = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Compares a keyframe with the background and learns from it.
    public mutating func observe(_ picture: GreyPicture, microseconds: Int64) -> Observation {
        let n = picture.pixels.count
        let mean = Double(picture.pixels.reduce(0) { $0 + Int($1) }) / Double(n)
        guard size == (picture.width, picture.height), background.count == n else {
            restart(picture, mean: mean)
            return Observation(microseconds: microseconds)
        }
        let shift = mean - backgroundMean
        if abs(shift) > configuration.lightingMeanDelta {
            restart(picture, mean: mean)
            return Observation(microseconds: microseconds, lighting: true)
        }
        // Changed pixels, after the overall brightness shift is taken out, counted per cell.
        let threshold = Float(configuration.pixelThreshold), offset = Float(shift)
        var changed = [Bool](repeating: false, count: n)
        var counts = [Int](repeating: 0, count: ActivityGrid.cells)
        var total = 0
        picture.pixels.withUnsafeBufferPointer { p in
            background.withUnsafeBufferPointer { b in
                for i in 0..<n where abs(Float(p[i]) - (b[i] + offset)) > threshold {
                    changed[i] = true
                    counts[Int(cellOf[i])] += 1
                    total += 1
                }
            }
        }
        if Double(total) > configuration.lightingShare * Double(n) {
            restart(picture, mean: mean)
            return Observation(microseconds: microseconds, lighting: true)
        }
        // A cell moved when enough of its pixels did.
        var cells = CellMask()
        var best = 0.0
        for c in 0..<ActivityGrid.cells where cellPixels[c] > 0 {
            let share = Double(counts[c]) / Double(cellPixels[c])
            if share >= configuration.cellShare {
                cells[c] = true
                best = max(best, share)
            }
        }
        learn(picture, changed: changed)
        return Observation(microseconds: microseconds, cells: cells, score: UInt8(min(255, (best * 255).rounded())))
    }

    private mutating func restart(_ picture: GreyPicture, mean: Double) {
        background = picture.pixels.map(Float.init)
        previous = picture.pixels
        still = [UInt8](repeating: 0, count: picture.pixels.count)
        backgroundMean = mean
        if size == (picture.width, picture.height) && cellOf.count == picture.pixels.count { return }
        size = (picture.width, picture.height)
        cellOf = []
        cellOf.reserveCapacity(picture.pixels.count)
        cellPixels = [Int](repeating: 0, count: ActivityGrid.cells)
        for y in 0..<picture.height {
            let row = min(ActivityGrid.rows - 1, y * ActivityGrid.rows / picture.height)
            for x in 0..<picture.width {
                let cell = row * ActivityGrid.columns + min(ActivityGrid.columns - 1, x * ActivityGrid.columns / picture.width)
                cellOf.append(UInt8(cell))
                cellPixels[cell] += 1
            }
        }
    }

    private mutating func learn(_ picture: GreyPicture, changed: [Bool]) {
        let a = configuration.learning, am = configuration.learningMoving
        let steady = configuration.pixelThreshold / 2, absorb = configuration.absorbAfter
        var sum: Float = 0
        picture.pixels.withUnsafeBufferPointer { p in
            background.withUnsafeMutableBufferPointer { b in
                for i in 0..<b.count {
                    if changed[i] {
                        still[i] = abs(Int(p[i]) - Int(previous[i])) <= steady ? still[i] &+ 1 : 0
                        if still[i] >= absorb {
                            b[i] = Float(p[i])
                            still[i] = 0
                        } else {
                            b[i] += am * (Float(p[i]) - b[i])
                        }
                    } else {
                        still[i] = 0
                        b[i] += a * (Float(p[i]) - b[i])
                    }
                    sum += b[i]
                }
            }
        }
        previous = picture.pixels
        backgroundMean = Double(sum) / Double(background.count)
    }
}
