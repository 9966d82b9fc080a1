import SystemCrypto
import FoundationEssentials
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// What a segment whose bytes changed still proves (issue 22): which of its sealed pieces are in
/// the file intact, and which seconds the others held. Piece 0 is the header (`ftyp`, `moov`),
/// piece n the n-th fragment, as the box hashed them when it wrote the file.
public struct FragmentDamage: Sendable, Equatable {
    /// A run of fragments not found intact, and the stretch of the segment they held.
    public struct Lost: Sendable, Equatable {
        public var first: Int
        public var last: Int
        public var from: Timestamp
        public var to: Timestamp
    }

    /// Pieces sealed (header and fragments).
    public var sealed: Int
    /// Sealed pieces found byte for byte in the file.
    public var intact: Int
    public var headerIntact: Bool
    public var lost: [Lost]
    /// True when the lost stretches' times come from the intact fragments' own decode times;
    /// false when they are spread evenly over the record's time (the header was lost too).
    public var exactTimes: Bool

    public var lostMilliseconds: Int64 { lost.reduce(Int64(0)) { $0.adding(saturating: $1.to.milliseconds(since: $1.from)) } }

    /// In words, e.g. "8 of 10 fragments intact as sealed; lost: fragments 3–4 (2026-…Z → …Z, 2.0 s)".
    public var summary: String {
        let fragments = sealed - 1
        var text = "\(intact - (headerIntact ? 1 : 0)) of \(fragments) fragment\(fragments == 1 ? "" : "s") intact as sealed"
        if !headerIntact { text += ", the header damaged (the file needs its header to play)" }
        let runs = lost.prefix(FragmentMap.maxRunsNamed).map { run in
            let which = run.first == run.last ? "fragment \(run.first)" : "fragments \(run.first)–\(run.last)"
            let seconds = Double(run.to.milliseconds(since: run.from)) / 1000
            return "\(which) (\(run.from) → \(run.to), \(String(format1: seconds)) s\(exactTimes ? "" : ", times approximate"))"
        }
        if !runs.isEmpty {
            text += "; lost: " + runs.joined(separator: ", ")
            if lost.count > runs.count { text += " and \(lost.count - runs.count) more stretches" }
        }
        return text
    }
}

/// Finds a changed segment's intact fragments without trusting its damaged bytes: the file is
/// cut before each top-level `moof`, as the box cut it when hashing; where a box header makes
/// no sense (the damage hit it) the cut moves on to the next place a plausible `moof` starts, so
/// the fragments after a damaged one are still found. Each piece is hashed and looked up among
/// the sealed pieces: found means intact, whatever its neighbours. The lost fragments' seconds
/// come from the intact neighbours' decode times (`tfdt`, `trun`) in the header's timescale,
/// counted from the record's start (the recorder starts each segment's time at 0).
///
/// Bounds: pieces cut at most `4 * ChainRecord.maxPieces` (past them the rest is one piece), a
/// `moov` read at most 4 MiB and a `moof` 1 MiB (larger ones give no time), the file read in
/// 1 MiB reads: memory is a few hundred kB whatever the file holds.
public enum FragmentMap {
    public static let maxRunsNamed = 10
    static let maxCuts = 4 * ChainRecord.maxPieces
    static let chunk = 1 << 20

    /// The damage of the plain file at `path` against its sealed `record`, or nil when the file
    /// cannot be read or the record is not a segment's.
    public static func damage(path: String, record: ChainRecord) -> FragmentDamage? {
        guard let sealed = record.pieces, !sealed.isEmpty, let mediaBytes = record.mediaBytes else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let limit = min(Int64(st.st_size), mediaBytes)
        let reader = Reader(fd: fd)

        // Where pieces start: 0, then each top-level moof found by walking or by resynchronising.
        var cuts: [Int64] = [0]
        var offset: Int64 = 0
        while offset < limit, cuts.count < maxCuts {
            if let (type, size) = reader.header(at: offset, limit: limit) {
                if type == "moof", offset > 0 { cuts.append(offset) }
                offset += size
            } else {
                // A box starts here whose header rotted or was cut: it may be a fragment's moof,
                // so a piece starts here too (else the fragment before it would be lost with it).
                if offset > 0, cuts.last != offset { cuts.append(offset) }
                guard let next = reader.nextMoof(after: offset, limit: limit) else { break }
                cuts.append(next)
                offset = next + Int64(reader.header(at: next, limit: limit)?.1 ?? 8)
            }
        }

        // Each piece hashed and found among the sealed ones.
        var where_: [String: [Int]] = [:]
        for (i, h) in sealed.enumerated() { where_[h, default: []].append(i) }
        var found = [Bool](repeating: false, count: sealed.count)
        var startOf: [Int: Int64] = [:]  // sealed index → offset of its piece in this file
        for (k, start) in cuts.enumerated() {
            let end = k + 1 < cuts.count ? cuts[k + 1] : limit
            guard let h = reader.sha256(from: start, to: end), let candidates = where_[h],
                  let i = candidates.first(where: { !found[$0] }) else { continue }
            found[i] = true
            startOf[i] = start
        }

        // Times: the header's video track and timescale (only from an intact header: a damaged
        // one's numbers vouch for nothing), each intact fragment's decode time.
        var moov = MP4Boxes.Moov()
        if found[0], let at = reader.moovOffset(limit: limit), let (_, size) = reader.header(at: at, limit: limit), size <= 4 << 20,
           let body = reader.read(at: at + 8, count: Int(size) - 8) {
            moov = MP4Boxes.parseMoov(body)
        }
        var span: [Int: (Int64, Int64)] = [:]  // fragment → (start ms, end ms) within the record
        if moov.timescale > 0 {
            for (i, start) in startOf where i > 0 {
                guard let (type, size) = reader.header(at: start, limit: limit), type == "moof", size <= 1 << 20,
                      let body = reader.read(at: start + 8, count: Int(size) - 8),
                      let f = MP4Boxes.parseMoof(body, track: moov.videoTrack, trex: moov.trex) else { continue }
                let end = f.base.addingReportingOverflow(f.duration)
                span[i] = (ms(f.base, moov.timescale, record), ms(end.overflow ? .max : end.partialValue, moov.timescale, record))
            }
        }
        let exact = moov.timescale > 0 && !span.isEmpty
        let fragments = sealed.count - 1
        let duration = record.endMs.subtracting(saturating: record.startMs)
        func even(_ n: Int) -> Int64 {  // the start of fragment n spread evenly (n from 1)
            fragments == 0 ? record.startMs : record.startMs.adding(saturating: Int64(Double(duration) * Double(n - 1) / Double(fragments)))
        }

        var lost: [FragmentDamage.Lost] = []
        var n = 1
        while n <= fragments {
            guard !found[n] else { n += 1; continue }
            var last = n
            while last + 1 <= fragments, !found[last + 1] { last += 1 }
            let from = exact ? (span[n - 1]?.1 ?? (n == 1 ? record.startMs : even(n))) : even(n)
            let to = exact ? (span[last + 1]?.0 ?? (last == fragments ? record.endMs : even(last + 1))) : (last == fragments ? record.endMs : even(last + 1))
            lost.append(.init(first: n, last: last, from: Timestamp(milliseconds: from), to: Timestamp(milliseconds: max(from, to))))
            n = last + 1
        }
        return FragmentDamage(sealed: sealed.count, intact: found.filter { $0 }.count, headerIntact: found[0], lost: lost, exactTimes: exact)
    }

    /// A decode time in the record's wall-clock milliseconds, inside the record.
    static func ms(_ t: UInt64, _ timescale: UInt32, _ record: ChainRecord) -> Int64 {
        let offset = Double(t) / Double(timescale) * 1000
        let at = record.startMs.adding(saturating: Int64(saturating: offset))
        return min(max(at, record.startMs), record.endMs)
    }

    struct Reader {
        let fd: Int32

        func read(at offset: Int64, count: Int) -> [UInt8]? {
            guard offset >= 0, count >= 0 else { return nil }
            var buf = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return nil }
                done += n
            }
            return buf
        }

        /// A plausible top-level box at `offset`: four letters or digits for a type and a size
        /// of at least a header that fits before `limit`. (type, size) or nil.
        func header(at offset: Int64, limit: Int64) -> (String, Int64)? {
            guard offset >= 0, limit - offset >= 8, let h = read(at: offset, count: 8) else { return nil }
            guard h[4..<8].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) }) else { return nil }
            var size = Int64(MP4Boxes.be32(h, 0))
            if size == 1 {
                guard limit - offset >= 16, let ext = read(at: offset + 8, count: 8) else { return nil }
                let wide = UInt64(MP4Boxes.be32(ext, 0)) << 32 | UInt64(MP4Boxes.be32(ext, 4))
                guard wide <= UInt64(limit - offset), wide >= 16 else { return nil }
                size = Int64(wide)
            }
            // Size 0 ("to the end of the file") is never a Junction segment's box: zeros where a
            // header was are damage.
            guard size >= 8, size <= limit - offset else { return nil }
            return (MP4Boxes.fourcc(h, 4), size)
        }

        /// The next offset after `offset` where a plausible `moof` box starts.
        func nextMoof(after offset: Int64, limit: Int64) -> Int64? {
            var at = offset + 1
            let marker = Array("moof".utf8)
            while at + 8 <= limit {
                let count = Int(min(Int64(chunk) + 8, limit - at))
                guard let b = read(at: at, count: count) else { return nil }
                var i = 4
                while i + 4 <= b.count {
                    if b[i] == marker[0], b[i + 1] == marker[1], b[i + 2] == marker[2], b[i + 3] == marker[3],
                       let (_, size) = header(at: at + Int64(i) - 4, limit: limit), size > 8 {
                        return at + Int64(i) - 4
                    }
                    i += 1
                }
                at += Int64(count - 8 + 1)
            }
            return nil
        }

        /// The first top-level `moov` (it follows `ftyp` in a Junction segment).
        func moovOffset(limit: Int64) -> Int64? {
            var at: Int64 = 0
            for _ in 0..<4 {
                guard let (type, size) = header(at: at, limit: limit) else { return nil }
                if type == "moov" { return at }
                at += size
            }
            return nil
        }

        func sha256(from start: Int64, to end: Int64) -> String? {
            var h = SHA256()
            var at = start
            var buffer = [UInt8](repeating: 0, count: chunk)
            while at < end {
                let want = Int(min(Int64(chunk), end - at))
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(at)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return nil }
                buffer.withUnsafeBytes { h.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                at += Int64(n)
            }
            return hex(h.finalize())
        }
    }
}
