import Foundation
import Testing
import Wire
@testable import Config

/// Issue 11: config files as a careless installer or an attacker writes them. Each test names the
/// item it answers.
@Suite struct HostileConfigTests {
    let minimal = """
        [device]
        id = "thaithuy-0042"
        [camera]
        url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
        """

    func error(_ text: String) -> ConfigError? {
        do { _ = try JunctionConfiguration.parse(text); return nil } catch { return error }
    }

    // Item 1: every URL the token or footage goes to is https unless allowed.
    @Test func aPlainHTTPTusURLBesideAnHTTPSServerIsRefused() {
        let e = error(minimal + "\n[server]\nurl = \"https://c.vn\"\ntoken = \"abc\"\ntus_url = \"http://127.0.0.1:9/files/\"\n")
        #expect(e?.key == "server.tus_url")
        #expect(e?.message.contains("allow_insecure_http") == true)
        let allowed = try? JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"https://c.vn\"\ntoken = \"abc\"\ntus_url = \"http://127.0.0.1:9/files/\"\nallow_insecure_http = true\n")
        #expect(allowed?.server?.tusURL == "http://127.0.0.1:9/files/")
    }

    // Item 22: no host, other schemes.
    @Test func addressesWithoutAHostOrOfAnotherSchemeAreRefused() {
        #expect(error(minimal + "\n[server]\nurl = \"https://\"\ntoken = \"abc\"\n")?.message.contains("no server name") == true)
        #expect(error(minimal + "\n[server]\nurl = \"https://c.vn\"\ntoken = \"abc\"\ntus_url = \"ftp://c.vn/files/\"\n")?.message.contains("ftp://") == true)
        #expect(error(minimal + "\n[server]\nurl = \"https://c.vn:99999\"\ntoken = \"abc\"\n")?.key == "server.url")
        #expect(error(minimal + "\n[server]\nurl = \"https://c .vn\"\ntoken = \"abc\"\n")?.key == "server.url")
    }

    // Item 2: the token never prints, however the configuration is printed.
    @Test func theTokenPrintsAsRedactedInEveryForm() throws {
        let c = try JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"https://c.vn\"\ntoken = \"tok-SECRET-123\"\n")
        var dumped = ""
        dump(c, to: &dumped)
        for text in [String(describing: c), String(reflecting: c), dumped, "\(c.server!)", "\(c.server!.token)"] {
            #expect(!text.contains("tok-SECRET-123"), "\(text)")
        }
        #expect(c.server?.token.reveal() == "tok-SECRET-123")
    }

    // Item 3: the userinfo is what comes before the *last* '@' of the authority.
    @Test func aPasswordWithAtSignsIsRedactedWhole() {
        let redact = JunctionConfiguration.Camera.redact
        #expect(redact("rtsp://admin:p@ss@10.0.0.1/x") == "rtsp://admin:***@10.0.0.1/x")
        #expect(redact("rtsp://admin:p@s@s@10.0.0.1:554/Streaming?a=b@c") == "rtsp://admin:***@10.0.0.1:554/Streaming?a=b@c")
        #expect(redact("rtsp://admin:pa/ss@10.0.0.1/x").contains("pa") == false)
        #expect(redact("rtsp://user@10.0.0.1/x") == "rtsp://user@10.0.0.1/x")
        #expect(redact("rtsp://10.0.0.1/x@y") == "rtsp://10.0.0.1/x@y" || !redact("rtsp://10.0.0.1/x@y").contains("10.0.0.1/x"))
        for url in ["rtsp://a:b@@h/", "rtsp://:@h", "rtsp://@", "rtsp://a:@", "x://:", "rtsp://a:b"] { _ = redact(url) }
    }

    // Item 17: nesting, many keys, an unclosed list: bounded, fast, an error with a line.
    @Test func theTOMLReaderStopsAtItsBounds() throws {
        let deep = "a = " + String(repeating: "[", count: 6000) + String(repeating: "]", count: 6000)
        #expect(throws: TOMLSyntaxError.self) { try TOMLDocument(parsing: deep) }
        let overBound = "a = " + String(repeating: "[", count: TOMLDocument.Limits.nesting + 1) + String(repeating: "]", count: TOMLDocument.Limits.nesting + 1)
        #expect(throws: TOMLSyntaxError.self) { try TOMLDocument(parsing: overBound) }
        let atBound = "a = " + String(repeating: "[", count: TOMLDocument.Limits.nesting) + String(repeating: "]", count: TOMLDocument.Limits.nesting)
        _ = try TOMLDocument(parsing: atBound)

        let clock = ContinuousClock()
        let many = (0..<20_000).map { "k\($0) = \($0)" }.joined(separator: "\n")
        var tooMany: TOMLSyntaxError?
        let t1 = clock.measure { do { _ = try TOMLDocument(parsing: many) } catch let e as TOMLSyntaxError { tooMany = e } catch {} }
        #expect(tooMany?.line == TOMLDocument.Limits.entries + 1)
        let unclosed = "a = [\n" + String(repeating: "1,\n", count: 20_000)
        var open: TOMLSyntaxError?
        let t2 = clock.measure { do { _ = try TOMLDocument(parsing: unclosed) } catch let e as TOMLSyntaxError { open = e } catch {} }
        #expect(open?.line == 1 && open?.message.contains("more than \(TOMLDocument.Limits.listLines) lines") == true, "\(String(describing: open))")
        // Not a timing test: a bound of minutes catches the quadratic reader (it took > 20 s).
        #expect(t1 < .seconds(60) && t2 < .seconds(60))
        let justEnough = (0..<(TOMLDocument.Limits.entries)).map { "k\($0) = \($0)" }.joined(separator: "\n")
        #expect(try TOMLDocument(parsing: justEnough).entries.count == TOMLDocument.Limits.entries)
    }

    // Item 19: a Notepad "ANSI" or UTF-16 save says which line and byte, and to save as UTF-8.
    @Test func aFileInAnotherEncodingNamesTheLineAndSaysUTF8() throws {
        let dir = NSTemporaryDirectory() + "cfg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ansi = dir + "/ansi.toml"
        var bytes = Array((minimal + "\n[upload]\n").utf8)
        bytes += Array("# l\u{E0}m".utf8.prefix(3)) + [0xE0, 0x0A]  // Latin-1 'à' on line 6, its 4th character
        try Data(bytes).write(to: URL(fileURLWithPath: ansi))
        #expect {
            try JunctionConfiguration.load(path: ansi)
        } throws: { error in
            let e = error as! ConfigError
            return e.line == 6 && e.message.contains("character 4") && e.message.contains("UTF-8") && e.message.contains("0xE0") && !e.message.contains("CocoaError")
        }
        let utf16 = dir + "/utf16.toml"
        try minimal.data(using: .utf16)!.write(to: URL(fileURLWithPath: utf16))
        #expect {
            try JunctionConfiguration.load(path: utf16)
        } throws: { error in (error as! ConfigError).message.contains("UTF-16") }
        let bom = dir + "/bom.toml"
        try Data([0xEF, 0xBB, 0xBF] + Array(minimal.utf8)).write(to: URL(fileURLWithPath: bom))
        #expect(try JunctionConfiguration.load(path: bom).device.id == "thaithuy-0042")
    }

    // Item 23: a missing file or a folder says so, not a raw CocoaError.
    @Test func aMissingFileOrAFolderSaysWhatItIs() {
        #expect {
            try JunctionConfiguration.load(path: "/nonexistent/junction.toml")
        } throws: { error in
            let e = "\(error)"
            return e.contains("no file here") && !e.contains("Cocoa")
        }
        #expect {
            try JunctionConfiguration.load(path: NSTemporaryDirectory())
        } throws: { error in "\(error)".contains("is a folder") }
        let big = NSTemporaryDirectory() + "big-\(UUID().uuidString.prefix(8)).toml"
        FileManager.default.createFile(atPath: big, contents: Data(count: ConfigFile.maxBytes + 1))
        #expect { try JunctionConfiguration.load(path: big) } throws: { error in "\(error)".contains("over 1 MB") }
    }
}
