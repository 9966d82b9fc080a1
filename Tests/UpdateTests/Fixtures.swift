import SystemCrypto
import Foundation
import Wire
@testable import Update

/// A release as the tests make it: a root filesystem image of random and zero blocks, a kernel
/// and an initramfs, packed and signed by a key of the test's own.
struct Release {
    let dir: String
    let rootfs: [UInt8]
    let bundle: String
    let key: ReleaseKey
    var keyring: Keyring { Keyring(keys: [key.key.publicKey]) }

    static let testKey = ReleaseKey(try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 0x24, count: 32)))

    /// `blocks` 4 KiB blocks; every fifth zero, the rest random (from `seed`, so two releases
    /// share what they are given to share).
    static func make(version: String = "1.1.0", minimum: String? = nil, arch: String = "amd64", rootfs: [UInt8]? = nil, blocks: Int = 64,
                     key: ReleaseKey = testKey, in dir: String? = nil, name: String = "release") throws -> Release {
        let dir = dir ?? tempDir()
        var rg = SeededBytes(seed: 7)
        let image = rootfs ?? (0..<blocks).flatMap { i in i % 5 == 0 ? [UInt8](repeating: 0, count: 4096) : rg.next(4096) }
        try Data(image).write(to: URL(fileURLWithPath: dir + "/\(name).ext4"))
        try Data("kernel \(version)".utf8).write(to: URL(fileURLWithPath: dir + "/\(name).vmlinuz"))
        try Data("initrd \(version) ".utf8 + [UInt8](repeating: 9, count: 3000)).write(to: URL(fileURLWithPath: dir + "/\(name).initrd"))
        var input = BundleWriter.Input(rootfs: dir + "/\(name).ext4", kernel: dir + "/\(name).vmlinuz", initrd: dir + "/\(name).initrd",
                                       version: ReleaseVersion(version)!, minimumVersion: minimum.flatMap(ReleaseVersion.init), arch: arch)
        input.blockBytes = 4096
        let out = dir + "/\(name).jub"
        _ = try BundleWriter.write(input, key: key, to: out)
        return Release(dir: dir, rootfs: image, bundle: out, key: key)
    }

    var bytes: [UInt8] { [UInt8](FileManager.default.contents(atPath: bundle)!) }

    func open(keyring: Keyring? = nil) async throws -> UpdateBundle {
        let b = bytes
        return try await UpdateBundle.open(size: Int64(b.count), keyring: keyring ?? self.keyring) { o, n in Self.slice(b, o, n) }
    }

    static func slice(_ b: [UInt8], _ o: Int64, _ n: Int) -> [UInt8] {
        guard o < b.count else { return [] }
        return Array(b[Int(o)..<min(b.count, Int(o) + n)])
    }
}

/// A bundle served from memory, counting what was asked of it.
final class Served: @unchecked Sendable {
    let bytes: [UInt8]
    let lock = NSLock()
    var requests: [(Int64, Int)] = []
    var corruptAt: Int64?
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var fetched: Int { lock.withLock { requests.reduce(0) { $0 + $1.1 } } }
    var fetch: SlotWriter.Fetch {
        { o, n in
            self.lock.withLock { self.requests.append((o, n)) }
            var got = Release.slice(self.bytes, o, n)
            if let c = self.corruptAt, c >= o, c < o + Int64(got.count) { got[Int(c - o)] ^= 0xff }
            return got
        }
    }
}

struct SeededBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next(_ n: Int) -> [UInt8] {
        (0..<n).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }
}

func tempDir() -> String {
    let d = NSTemporaryDirectory() + "update-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// A card with two slots, a boot partition and a data partition, as files.
struct Card {
    let dir: String
    var esp: String { dir + "/esp" }
    var statePath: String { dir + "/data/update/state.json" }
    var layout: Installer.Layout {
        Installer.Layout(esp: esp, slots: ["a": .init(root: "PARTUUID=0000abcd-02", device: dir + "/slot-a"),
                                           "b": .init(root: "PARTUUID=0000abcd-03", device: dir + "/slot-b")])
    }

    static func make(running: [UInt8], version: String = "1.0.0") throws -> Card {
        let card = Card(dir: tempDir())
        try FileManager.default.createDirectory(atPath: card.esp + "/loader/entries", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: card.esp + "/junction", withIntermediateDirectories: true)
        try Data(running).write(to: URL(fileURLWithPath: card.dir + "/slot-a"))
        try Data([UInt8](repeating: 0x55, count: 8192)).write(to: URL(fileURLWithPath: card.dir + "/slot-b"))
        try BootEntries(esp: card.esp).install(slot: "a", release: version, generation: 1, options: "root=PARTUUID=0000abcd-02 ro quiet junction.slot=a")
        // The flashed slot is blessed.
        try FileManager.default.moveItem(atPath: card.esp + "/loader/entries/junction-a+3.conf", toPath: card.esp + "/loader/entries/junction-a.conf")
        try "a PARTUUID=0000abcd-02 \(card.dir)/slot-a\nb PARTUUID=0000abcd-03 \(card.dir)/slot-b\n".write(toFile: card.esp + "/junction/slots", atomically: true, encoding: .utf8)
        return card
    }

    func box(version: String = "1.0.0", slot: String = "a", bootID: String = "boot-1") -> Installer.Box {
        Installer.Box(version: ReleaseVersion(version)!, arch: "amd64", bootedSlot: slot,
                      cmdline: "BOOT_IMAGE=/junction/\(slot)/vmlinuz root=PARTUUID=0000abcd-0\(slot == "a" ? 2 : 3) ro quiet junction.slot=\(slot)", bootID: bootID)
    }

    func slot(_ s: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: dir + "/slot-" + s)!) }

    /// What systemd-boot does at power on: take the first entry in its order, count a try.
    func boot() throws -> String {
        let entries = BootEntries(esp: esp)
        guard let first = entries.bootOrder().first else { return "none" }
        if let left = first.triesLeft, left > 0 {
            let name = "junction-\(first.slot)+\(left - 1)-\((first.triesDone ?? 0) + 1).conf"
            try FileManager.default.moveItem(atPath: esp + "/loader/entries/" + first.file, toPath: esp + "/loader/entries/" + name)
        }
        return first.slot
    }

    /// What systemd-bless-boot does once boot-complete.target is reached.
    func bless(_ slot: String) throws {
        guard let e = BootEntries(esp: esp).entry(slot: slot), !e.isBlessed else { return }
        try FileManager.default.moveItem(atPath: esp + "/loader/entries/" + e.file, toPath: esp + "/loader/entries/junction-\(slot).conf")
    }
}
