#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The boot partition as systemd-boot reads it (Boot Loader Specification type #1 entries with
/// boot counting). Each slot has one entry, `loader/entries/junction-<slot>.conf`, and its
/// kernel and initramfs under `junction/<slot>/`. A freshly installed slot's entry is named
/// `junction-<slot>+3.conf`: systemd-boot renames it `+2-1`, `+1-2`, `+0-3` at each boot it
/// tries, sorts an entry with no tries left after every other, and `systemd-bless-boot`
/// removes the counter once `boot-complete.target` is reached, which Junction's health check
/// gates on recording and delivering. A blessed entry has no counter, so power cuts on a good
/// slot never count towards a fallback.
///
/// Entries sort by `sort-key` (all `junction`) then `version` descending: `version` is the
/// install's generation, so the slot installed last is tried first whatever its release
/// number, and the other slot is the fallback.
public struct BootEntries: Sendable {
    public let esp: String
    public static let slots = ["a", "b"]

    public init(esp: String) { self.esp = esp }

    public struct Entry: Sendable, Equatable {
        public var file: String
        public var slot: String
        public var triesLeft: Int?
        public var triesDone: Int?
        public var generation: Int
        public var release: String?
        public var options: String
        /// Counting and out of tries: systemd-boot boots it only when nothing else is left.
        public var isBad: Bool { triesLeft == 0 }
        public var isBlessed: Bool { triesLeft == nil }
    }

    var directory: String { esp + "/loader/entries" }

    /// `junction-b+2-1.conf` → ("b", 2, 1); nil for a file that is not a Junction slot entry.
    public static func parse(fileName: String) -> (slot: String, left: Int?, done: Int?)? {
        guard fileName.hasPrefix("junction-"), fileName.hasSuffix(".conf"), fileName.utf8.count <= 64 else { return nil }
        let stem = fileName.dropFirst("junction-".count).dropLast(".conf".count)
        let parts = stem.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
        let slot = String(parts[0])
        guard slots.contains(slot) else { return nil }
        if parts.count == 1 { return (slot, nil, nil) }
        let counter = parts[1].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        func number(_ s: Substring) -> Int? { s.utf8.count <= 4 && !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? Int(s) : nil }
        guard let left = number(counter[0]) else { return nil }
        if counter.count == 1 { return (slot, left, nil) }
        guard let done = number(counter[1]) else { return nil }
        return (slot, left, done)
    }

    public func entries() -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.sorted().compactMap { name -> Entry? in
            guard let (slot, left, done) = Self.parse(fileName: name),
                  let data = FileManager.default.contents(atPath: directory + "/" + name), data.count <= 4096 else { return nil }
            var generation = 0, release: String?, options = ""
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                let kv = line.split(separator: " ", maxSplits: 1)
                guard kv.count == 2 else { continue }
                switch kv[0] {
                case "version": generation = Int(kv[1].prefix(9)) ?? 0
                case "title": release = kv[1].split(separator: " ").dropFirst().first.map(String.init)
                case "options": options = String(kv[1])
                default: break
                }
            }
            return Entry(file: name, slot: slot, triesLeft: left, triesDone: done, generation: generation, release: release, options: options)
        }
    }

    public func entry(slot: String) -> Entry? { entries().first { $0.slot == slot } }

    /// The order systemd-boot tries them in (its `boot_entry_compare` for these entries):
    /// entries out of tries last, then the highest generation first, then by file name.
    public func bootOrder() -> [Entry] {
        entries().sorted { a, b in
            if a.isBad != b.isBad { return !a.isBad }
            if a.generation != b.generation { return a.generation > b.generation }
            return a.file < b.file
        }
    }

    /// Removes a slot's entry (first of all, before its slot is written: a half-written slot is
    /// never bootable) and syncs the directory.
    public func remove(slot: String) throws(UpdateError) {
        for e in entries() where e.slot == slot {
            guard unlink(directory + "/" + e.file) == 0 || errno == ENOENT else {
                throw .io("cannot remove \(e.file): \(String(cString: strerror(errno)))")
            }
        }
        try syncDirectory(of: directory + "/x")
    }

    /// Writes the entry of a freshly installed slot, with `tries` boots to prove itself.
    public func install(slot: String, release: String, generation: Int, options: String, tries: Int = 3) throws(UpdateError) {
        guard Self.slots.contains(slot), (1...9).contains(tries) else { throw .slot("slot \(slot) / tries \(tries)") }
        try remove(slot: slot)
        let text = """
            title Junction \(release) (slot \(slot))
            sort-key junction
            version \(generation)
            linux /junction/\(slot)/vmlinuz
            initrd /junction/\(slot)/initrd.img
            options \(options)

            """
        let name = "junction-\(slot)+\(tries).conf"
        let tmp = directory + "/." + name + ".partial"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, bytes.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard n == bytes.count, synced else { throw .io("cannot write \(tmp)") }
        guard rename(tmp, directory + "/" + name) == 0 else { throw .io("cannot rename \(tmp): \(String(cString: strerror(errno)))") }
        try syncDirectory(of: directory + "/" + name)
    }

    /// The kernel command line of a slot: the running one's with its root and slot replaced.
    public static func options(from running: String, root: String, slot: String) -> String {
        var words = running.split(separator: " ").map(String.init).filter { !$0.hasPrefix("root=") && !$0.hasPrefix("junction.slot=") && !$0.hasPrefix("BOOT_IMAGE=") && !$0.hasPrefix("initrd=") }
        words.insert("root=\(root)", at: 0)
        words.append("junction.slot=\(slot)")
        return words.joined(separator: " ")
    }

    /// The slot named on a kernel command line (`junction.slot=a`), nil when it names none.
    public static func bootedSlot(cmdline: String) -> String? {
        for w in cmdline.split(whereSeparator: { $0 == " " || $0 == "\n" }) where w.hasPrefix("junction.slot=") {
            let s = String(w.dropFirst("junction.slot=".count))
            return slots.contains(s) ? s : nil
        }
        return nil
    }
}
