import Testing
import Wire
@testable import Config

/// The commune's settings over the installer's file (issue 24, item 7): key by key; only the
/// keys the commune may set; every error names where it is (the overlay and its line, or the
/// installer's file); the size bound at the bound.
@Suite struct SettingsOverlayTests {
    let base = """
        [device]
        id = "thaithuy-0042"
        [camera]
        url = "rtsp://admin:secret@192.168.1.64:554/Streaming/Channels/101"
        stall_seconds = 7
        [upload]
        max_kbps = 2000
        order = "newest_first"
        """

    func layered(_ text: String, revision: Int64 = 2) throws(ConfigError) -> JunctionConfiguration {
        try JunctionConfiguration.parse(base, file: "/etc/junction/junction.toml", overlay: SettingsOverlay(revision: revision, text: text))
    }

    func refusal(_ text: String) -> ConfigError? {
        do { _ = try layered(text); return nil } catch { return error }
    }

    @Test func keysTheOverlaySetsWinAndTheRestStaysTheInstallers() throws {
        let c = try layered("""
            [camera]
            url = "rtsp://admin:secret@192.168.1.65:554/Streaming/Channels/101"
            [upload]
            max_kbps = 512
            [motion]
            enabled = true
            cells = [80, 81]
            """)
        #expect(c.camera.url.contains("192.168.1.65"))
        #expect(c.camera.stallSeconds == 7, "a camera key the overlay does not set stays the file's")
        #expect(c.upload.maxKbps == 512)
        #expect(c.upload.order.rawValue == "newest_first")
        #expect(c.motion.enabled && c.activity.enabled, "a new section from the overlay is read as if it were in the file")
        #expect(c.device.id == "thaithuy-0042")
        // nil: the installer's file alone, exactly as before.
        #expect(try JunctionConfiguration.parse(base, file: "x", overlay: nil) == JunctionConfiguration.parse(base, file: "x"))
    }

    @Test(arguments: ["[server]\nurl = \"https://evil.example\"", "[device]\nid = \"other-box\"", "[storage]\nmax_percent = 99",
                      "[update]\ntries = 10", "[camera]\nid = \"cam9\"", "[log]\nlevel = \"debug\"\n[server]\ntoken = \"x\""])
    func keysOnlyTheInstallerMaySetAreRefusedByName(_ text: String) throws {
        let e = try #require(refusal(text))
        #expect(e.file == "the commune's settings (revision 2)")
        #expect(e.message.contains("the commune may not set this key"))
        let key = try #require(e.key)
        #expect(!SettingsOverlay.isAllowed(key))
        let line = try #require(e.line)
        let named = text.split(separator: "\n", omittingEmptySubsequences: false)[line - 1]
        #expect(named.hasPrefix(key.split(separator: ".").last! + " "), "line \(line) is the key's own: \(named)")
    }

    @Test func aBadValueInTheOverlayNamesTheOverlayAndItsLine() throws {
        let e = try #require(refusal("[log]\nlevel = \"info\"\n[upload]\nmax_kbps = -5"))
        #expect(e.file == "the commune's settings (revision 2)" && e.line == 4 && e.key == "upload.max_kbps", "\(e)")
        let typo = try #require(refusal("[upload]\nmax_kpbs = 5"))
        #expect(typo.file == "the commune's settings (revision 2)" && typo.key == "upload.max_kpbs", "an unknown key under an allowed section is the overlay's, by name")
        let syntax = try #require(refusal("[upload\nmax_kbps = 5"))
        #expect(syntax.file == "the commune's settings (revision 2)" && syntax.line == 1)
    }

    @Test func aBadValueInTheFileStillNamesTheFile() throws {
        do {
            _ = try JunctionConfiguration.parse(base + "\n[log]\nlevel = \"loud\"\n", file: "/etc/junction/junction.toml",
                                                overlay: SettingsOverlay(revision: 3, text: "[upload]\nmax_kbps = 5"))
            Issue.record("a bad level in the file was taken")
        } catch {
            #expect(error.file == "/etc/junction/junction.toml" && error.key == "log.level")
        }
    }

    @Test func anEmptyOverlayIsRefused() throws {
        let e = try #require(refusal("# nothing here\n"))
        #expect(e.message.contains("sets no key"))
    }

    @Test func theSizeBoundHoldsAtTheBound() throws {
        let line = "[upload]\nmax_kbps = 512\n"
        let pad = RemoteSettings.maxTOMLBytes - line.utf8.count
        let atBound = line + "#" + String(repeating: "x", count: pad - 2) + "\n"
        #expect(atBound.utf8.count == RemoteSettings.maxTOMLBytes)
        #expect(try layered(atBound).upload.maxKbps == 512)
        let e = try #require(refusal(atBound + "x"))
        #expect(e.message.contains("longer than \(RemoteSettings.maxTOMLBytes) bytes"))
    }
}
