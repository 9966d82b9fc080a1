/// Footage requests from the commune: each becomes a flag (source `request`) the first time the
/// box hears of it, and the box reports, for every part of the requested range, what it has.
extension Ring {
    /// The flag made for a commune request, if any (released ones too: a withdrawn request is
    /// not flagged again).
    public func flag(requestID: String) async throws(RingError) -> Flag? {
        let rows = try await index.run("SELECT id FROM flag WHERE request_id = ? ORDER BY id LIMIT 1", [.text(requestID)])
        guard let id = rows.first?.column("id")?.integer else { return nil }
        return try await flags(includeReleased: true).first { $0.id == Int64(id) }
    }

    /// What the ring has of `from..<to`: `uploaded` and `pending` where segments are (pending
    /// also for what is still to be recorded while `recording`), `evicted` where the ring has
    /// overwritten footage, `not_recorded` elsewhere (gaps, before the box had footage). Holes
    /// under a second between segments (a reconnect's keyframe wait) count as covered.
    public func coverage(camera: String, from: Timestamp, to: Timestamp, recording: Bool,
                         now: Timestamp = .now()) async throws(RingError) -> [CoverageSpan] {
        guard to > from else { return [] }
        var layers: [CoverageSpan] = []
        if let evicted = try await index.evicted(camera: camera) {
            layers.append(CoverageSpan(from: evicted.from, to: evicted.through, status: .evicted))
        }
        let segments = try await index.segments(camera: camera, from: from, to: to)
        let newestEnd = try await index.span(camera: camera)?.newest
        // Still to come: after the newest segment while recording, after now otherwise.
        let tailFrom = recording ? (newestEnd ?? now) : now
        if to > tailFrom { layers.append(CoverageSpan(from: max(tailFrom, from), to: to, status: .pending)) }
        for gap in try await index.gaps(camera: camera, from: from, to: to) {
            layers.append(CoverageSpan(from: gap.start, to: gap.end, status: .notRecorded))
        }
        for (i, s) in segments.enumerated() {
            var end = s.end
            if i + 1 < segments.count, segments[i + 1].start > end, segments[i + 1].start.seconds(since: end) < 1 {
                end = segments[i + 1].start
            }
            layers.append(CoverageSpan(from: s.start, to: end, status: s.uploaded ? .uploaded : .pending))
        }
        return Coverage.paint(from: from, to: to, base: .notRecorded, layers: layers)
    }
}
