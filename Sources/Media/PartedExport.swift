#if canImport(Glibc)
import Glibc
#endif

/// Joins segment files into MP4 parts without re-encoding (`ExportMuxer`), as `junction export`
/// and the commune's evidence download both need: a new part where the camera's format changed
/// (resolution, codec) or where the next segment would take a part past `split` bytes. Parts are
/// written as `name(n).partial` and renamed when whole; when the export is one part it is named
/// `name(nil)` instead. Dropping the writer without `finish` deletes the part being written.
public final class PartedExport {
    public struct Part: Sendable, Equatable {
        public var path: String
        public var bytes: Int64
        /// Times of the first segment's start and the last one's end, as given to `add`.
        public var startMicroseconds: Int64
        public var endMicroseconds: Int64
        public var segments: Int
    }

    /// A part's path: `nil` for an export of one part, else the part's number from 1.
    public typealias Naming = (Int?) -> String

    private let name: Naming
    private let split: Int64?
    public private(set) var parts: [Part] = []
    private var muxer: ExportMuxer?
    private var current = Part(path: "", bytes: 0, startMicroseconds: 0, endMicroseconds: 0, segments: 0)

    public init(split: Int64? = nil, name: @escaping Naming) {
        self.split = split
        self.name = name
    }

    /// Appends a segment starting `startMicroseconds` (any clock, the same for every call);
    /// returns the number (from 1) of the part it went into.
    @discardableResult
    public func add(_ path: String, bytes: Int64, startMicroseconds: Int64, endMicroseconds: Int64) throws(MediaError) -> Int {
        if let m = muxer, let split, m.bytesWritten + bytes > split { try closePart() }
        if muxer == nil { try open(path, start: startMicroseconds) }
        var failure: MediaError?
        do {
            try muxer!.append(segment: path, offsetMicroseconds: startMicroseconds - current.startMicroseconds)
        } catch {
            failure = error
        }
        if let failure {
            guard failure.code == .invalidData, current.segments > 0 else { throw failure }
            // The camera's format changed: a new part from here.
            try closePart()
            try open(path, start: startMicroseconds)
            try muxer!.append(segment: path, offsetMicroseconds: 0)
        }
        current.endMicroseconds = endMicroseconds
        current.segments += 1
        return parts.count + 1
    }

    /// Closes the last part; one part alone takes the plain name.
    public func finish() throws(MediaError) {
        try closePart()
        if parts.count == 1 {
            let plain = name(nil)
            guard rename(parts[0].path, plain) == 0 else {
                throw MediaError(code: .storage, call: "rename", target: plain, message: String(cString: strerror(errno)))
            }
            parts[0].path = plain
        }
    }

    /// Drops the part being written (its muxer deletes the unfinished file).
    public func abandon() { muxer = nil }

    private func open(_ template: String, start: Int64) throws(MediaError) {
        let path = name(parts.count + 1)
        muxer = try ExportMuxer(path: path + ".partial", template: template)
        current = Part(path: path, bytes: 0, startMicroseconds: start, endMicroseconds: start, segments: 0)
    }

    private func closePart() throws(MediaError) {
        guard let m = muxer else { return }
        try m.finish()
        muxer = nil
        guard rename(current.path + ".partial", current.path) == 0 else {
            throw MediaError(code: .storage, call: "rename", target: current.path, message: String(cString: strerror(errno)))
        }
        var st = stat()
        current.bytes = stat(current.path, &st) == 0 ? Int64(st.st_size) : 0
        parts.append(current)
    }
}
