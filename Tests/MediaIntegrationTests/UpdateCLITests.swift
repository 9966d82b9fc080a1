import Foundation
import Testing

/// Root's side of an update, as the real binaries run it on a box (issue 24): `junction update
/// apply` takes the offer the daemon left, fetches the release from a real `commune serve` by
/// range, writes slot b of a card made of files and its boot entry; `junction update settle`
/// records what the next boot made of it. Refusals and a hostile offer end in words, not a trap
/// (the first QEMU run found the HTTP client trapping at exit).
@Suite(.timeLimit(.minutes(5)))
struct UpdateCLITests {
    struct Card {
        let dir: String
        var esp: String { dir + "/esp" }
        var data: String { dir + "/data" }
        var config: String { dir + "/junction.toml" }
        var offer: String { data + "/update-offer.json" }
        let cmdlineA = "root=PARTUUID=0000abcd-02 ro quiet junction.slot=a"

        init(server: String, token: String) throws {
            dir = Rig.tempDir("update-cli")
            for d in [esp + "/loader/entries", esp + "/junction", data] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
            try Data([UInt8](repeating: 7, count: 4096 * 32)).write(to: URL(fileURLWithPath: dir + "/slot-a"))
            try Data().write(to: URL(fileURLWithPath: dir + "/slot-b"))
            try "a PARTUUID=0000abcd-02 \(dir)/slot-a\nb PARTUUID=0000abcd-03 \(dir)/slot-b\n".write(toFile: esp + "/junction/slots", atomically: true, encoding: .utf8)
            try "title Junction 1.0.0 (slot a)\nsort-key junction\nversion 1\nlinux /junction/a/vmlinuz\ninitrd /junction/a/initrd.img\noptions \(cmdlineA)\n"
                .write(toFile: esp + "/loader/entries/junction-a.conf", atomically: true, encoding: .utf8)
            try """
                [device]
                id = "it-box"
                [camera]
                url = "rtsp://127.0.0.1:1/cam"
                [storage]
                path = "\(data)"
                [server]
                url = "\(server)"
                token = "\(token)"
                allow_insecure_http = true

                """.write(toFile: config, atomically: true, encoding: .utf8)
        }

        func junction(_ args: [String], cmdline: String? = nil, running: String = "1.0.0") throws -> Rig.Result {
            try Rig.junction(args + ["--config", config, "--esp", esp, "--cmdline", cmdline ?? cmdlineA, "--running", running])
        }

        func offer(version: String, bytes: Int) throws {
            try #"{"arch":"amd64","bytes":\#(bytes),"path":"/api/v1/releases/\#(version)/amd64","rollout":"r-test","version":"\#(version)"}"#
                .write(toFile: offer, atomically: true, encoding: .utf8)
        }
    }

    @Test func applyFetchesFromTheCommuneWritesSlotBAndSettleKeepsIt() throws {
        let commune = try UplinkFaultTests.Commune()
        defer { commune.server.stop() }
        let card = try Card(server: "http://127.0.0.1:\(commune.port)", token: commune.token)
        let work = card.dir
        // A signed release whose root file system shares half its blocks with slot a.
        let key = work + "/release-key.TEST-ONLY"
        let pub = try Rig.junction(["update", "keygen", "--out", key])
        try pub.stdout.write(toFile: work + "/release-keys", atomically: true, encoding: .utf8)
        var rootfs = [UInt8](repeating: 7, count: 4096 * 16)
        for _ in 0..<(4096 * 16) { rootfs.append(UInt8.random(in: 0...255)) }
        try Data(rootfs).write(to: URL(fileURLWithPath: work + "/rootfs"))
        try Data("kernel".utf8).write(to: URL(fileURLWithPath: work + "/vmlinuz"))
        try Data("initrd".utf8).write(to: URL(fileURLWithPath: work + "/initrd.img"))
        let bundle = work + "/junction-1.2.0-amd64.jub"
        let pack = try Rig.junction(["update", "pack", "--rootfs", work + "/rootfs", "--kernel", work + "/vmlinuz", "--initrd", work + "/initrd.img",
                                     "--version", "1.2.0", "--arch", "amd64", "--key", key, "--out", bundle])
        #expect(pack.status == 0, "\(pack.stderr)")
        let add = try Rig.run(UplinkFaultTests.commune, ["releases", "add", bundle, "--keyring", work + "/release-keys", "--data", commune.data])
        #expect(add.status == 0, "\(add.stderr)")
        _ = Rig.wait(seconds: 10) { (try? Rig.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "http://127.0.0.1:\(commune.port)/files"]))?.status == 0 }

        // Nothing offered: said, exit 0, and no trap from the HTTP client at exit.
        let nothing = try card.junction(["update", "apply", "--keyring", work + "/release-keys", "--no-reboot"])
        #expect(nothing.status == 0 && nothing.stdout.contains("Nothing offered"), "\(nothing.stdout)\(nothing.stderr)")
        // The release running: not taken, and the offer is used up.
        try card.offer(version: "1.0.0", bytes: 100)
        let same = try card.junction(["update", "apply", "--keyring", work + "/release-keys", "--no-reboot"])
        #expect(same.status == 0 && same.stdout.contains("runs it already"), "\(same.stdout)\(same.stderr)")
        #expect(!FileManager.default.fileExists(atPath: card.offer))
        // An offer through a link: refused in words.
        try card.offer(version: "1.2.0", bytes: 10)
        try FileManager.default.moveItem(atPath: card.offer, toPath: work + "/elsewhere.json")
        try FileManager.default.createSymbolicLink(atPath: card.offer, withDestinationPath: work + "/elsewhere.json")
        let linked = try card.junction(["update", "apply", "--keyring", work + "/release-keys", "--no-reboot"])
        #expect(linked.status == 1 && linked.stderr.contains("update-offer.json"), "\(linked.stdout)\(linked.stderr)")

        // The real offer: fetched by range, slot b written, its entry first with 3 tries.
        let size = try FileManager.default.attributesOfItem(atPath: bundle)[.size] as! Int
        try card.offer(version: "1.2.0", bytes: size)
        let apply = try card.junction(["update", "apply", "--keyring", work + "/release-keys", "--no-reboot"])
        #expect(apply.status == 0 && apply.stdout.contains("Installed 1.2.0 into slot b"), "\(apply.stdout)\(apply.stderr)")
        #expect(apply.stdout.contains("copied from the running slot 16"), "the shared blocks were copied, not fetched: \(apply.stdout)")
        let slotB = try Data(contentsOf: URL(fileURLWithPath: work + "/slot-b"))
        #expect(slotB == Data(rootfs), "slot b is the release's root file system")
        let entries = try FileManager.default.contentsOfDirectory(atPath: card.esp + "/loader/entries").sorted()
        #expect(entries == ["junction-a.conf", "junction-b+3.conf"], "\(entries)")
        #expect(try String(contentsOfFile: card.esp + "/junction/b/vmlinuz", encoding: .utf8) == "kernel")

        // The next boot on b, once systemd-bless-boot dropped the counter: kept.
        let cmdlineB = "root=PARTUUID=0000abcd-03 ro quiet junction.slot=b"
        let trial = try card.junction(["update", "settle"], cmdline: cmdlineB, running: "1.2.0")
        #expect(trial.status == 0 && trial.stdout.contains("on trial"), "\(trial.stdout)\(trial.stderr)")
        try FileManager.default.moveItem(atPath: card.esp + "/loader/entries/junction-b+3.conf", toPath: card.esp + "/loader/entries/junction-b.conf")
        let kept = try card.junction(["update", "settle"], cmdline: cmdlineB, running: "1.2.0")
        #expect(kept.status == 0 && kept.stdout.contains("passed its health check"), "\(kept.stdout)\(kept.stderr)")
        let status = try Rig.junction(["update", "status", "--config", card.config, "--esp", card.esp])
        #expect(status.stdout.contains("1.2.0 blessed"), "\(status.stdout)\(status.stderr)")
    }
}
