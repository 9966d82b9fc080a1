/// Retention by bytes: the ring stays within its budget and leaves the reserve free, evicting the
/// oldest unpinned segments first. Recording never stops because the card is full.
extension Ring {
    public struct Usage: Sendable, Equatable, Codable {
        /// Bytes of live segments.
        public var ringBytes: Int64
        public var segments: Int64
        /// The budget in force (max_bytes, or max_percent of the filesystem).
        public var budgetBytes: Int64
        public var filesystemBytes: Int64
        public var freeBytes: Int64
        public var reserveBytes: Int64
        /// Flagged and not yet uploaded: never evicted.
        public var pinnedBytes: Int64
        public var pinnedCapBytes: Int64
        /// The largest recent segment: room the next one needs.
        public var headroomBytes: Int64

        enum CodingKeys: String, CodingKey {
            case segments
            case ringBytes = "ring_bytes", budgetBytes = "budget_bytes", filesystemBytes = "filesystem_bytes"
            case freeBytes = "free_bytes", reserveBytes = "reserve_bytes", pinnedBytes = "pinned_bytes"
            case pinnedCapBytes = "pinned_cap_bytes", headroomBytes = "headroom_bytes"
        }
    }

    public func usage() async throws(RingError) -> Usage {
        let totals = try await index.totals()
        let (space, budget) = try await budget()
        return Usage(ringBytes: totals.bytes, segments: totals.count, budgetBytes: budget, filesystemBytes: space.total,
                     freeBytes: space.available, reserveBytes: configuration.reserveBytes, pinnedBytes: totals.pinnedBytes,
                     pinnedCapBytes: pinnedCap(budget: budget), headroomBytes: max(totals.largestRecent, 1_000_000))
    }

    /// The filesystem's size and free space, and the budget in force.
    func budget() async throws(RingError) -> (space: FileSystem.Space, bytes: Int64) {
        let root = configuration.root
        let space = try await blocking { FileSystem.space(root) } ?? FileSystem.Space(total: 0, available: 0)
        switch configuration.budget {
        case .bytes(let b): return (space, b)
        case .percent(let p): return (space, space.total / 100 * Int64(p))
        }
    }

    nonisolated func pinnedCap(budget: Int64) -> Int64 { budget / 100 * Int64(configuration.maxPinnedPercent) }

    public struct Eviction: Sendable, Equatable {
        public var segments: Int
        public var bytes: Int64
        /// True when the ring is over budget and only pinned footage is left to evict.
        public var blockedByPins: Bool
    }

    /// Evicts the oldest unpinned segments until the ring, plus room for the segment being
    /// written and the next one, fits the budget and the reserve stays free.
    /// - Parameter writingBytes: bytes of the open segment not yet in the index.
    @discardableResult
    public func enforceRetention(writingBytes: Int64 = 0) async throws(RingError) -> Eviction {
        var evicted = Eviction(segments: 0, bytes: 0, blockedByPins: false)
        for _ in 0..<64 {  // bounded: each round evicts up to 64 segments
            let u = try await usage()
            let room = u.headroomBytes + writingBytes
            let overBudget = u.ringBytes + room - u.budgetBytes
            let underReserve = u.reserveBytes + room - u.freeBytes
            let needed = max(overBudget, underReserve)
            guard needed > 0 else { break }
            let candidates = try await index.evictionCandidates(limit: 64)
            if candidates.isEmpty {
                evicted.blockedByPins = u.segments > 0
                if evicted.blockedByPins {
                    logger.warning("ring full: only flagged footage is left; it stays until uploaded", metadata: ["pinned_bytes": "\(u.pinnedBytes)"])
                }
                break
            }
            var chosen: [Segment] = []
            var freed: Int64 = 0
            for c in candidates where freed < needed {
                chosen.append(c)
                freed += c.bytes
            }
            try await evict(chosen)
            evicted.segments += chosen.count
            evicted.bytes += freed
        }
        if evicted.segments > 0 {
            logger.info("retention: evicted oldest segments", metadata: ["segments": "\(evicted.segments)", "bytes": "\(evicted.bytes)"])
            if let oldest = try await index.oldestStart() {
                try await index.pruneGaps(before: oldest)
            }
        }
        return evicted
    }

    /// Deletion in the crash-safe order: mark, unlink, drop.
    func evict(_ segments: [Segment]) async throws(RingError) {
        try await fileUnfiled(before: segments)
        let ids = segments.map(\.id)
        try await index.markDeleting(ids)
        let paths = segments.map { path(of: $0) }
        try await blocking {
            for p in paths { try FileSystem.remove(p) }
        }
        try await index.drop(ids)
    }
}
