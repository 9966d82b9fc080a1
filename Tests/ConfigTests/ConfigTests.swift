import Foundation
import Testing
@testable import Config

@Suite struct ConfigTests {
    let minimal = """
        [device]
        id = "thaithuy-0042"
        [camera]
        url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
        """

    @Test func contractExampleParses() throws {
        let c = try JunctionConfiguration.parse("""
            [device]
            id = "thaithuy-0042"
            [camera]
            url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
            transport = "tcp"            # or "udp"
            stall_seconds = 5
            [storage]
            path = "/var/lib/junction"
            max_bytes = "24GB"           # or max_percent = 90
            reserve_bytes = "512MB"
            segment_seconds = 10
            """)
        #expect(c.device.id == "thaithuy-0042")
        #expect(c.camera.transport == .tcp)
        #expect(c.camera.stallSeconds == 5)
        #expect(c.storage.budget == .bytes(ByteSize(bytes: 24_000_000_000)))
        #expect(c.storage.reserve.bytes == 512_000_000)
        #expect(c.storage.segmentSeconds == 10)
    }

    @Test func defaults() throws {
        let c = try JunctionConfiguration.parse(minimal)
        #expect(c.storage.budget == .percent(90))
        #expect(c.storage.segmentSeconds == 10)
        #expect(c.camera.stallSeconds == 5)
        #expect(c.storage.path == "/var/lib/junction")
        #expect(c.camera.id == "cam1")
        #expect(c.storage.syncFragments, "each fragment is synced unless the config says otherwise")
    }

    @Test func syncFragmentsIsABoolean() throws {
        #expect(try !JunctionConfiguration.parse(minimal + "\n[storage]\nsync_fragments = false\n").storage.syncFragments)
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[storage]\nsync_fragments = \"no\"\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "storage.sync_fragments" && e.line == 6 && e.message.contains("true or false")
        }
    }

    @Test func sealingIsOnUnlessTheConfigTurnsItOff() throws {
        #expect(try JunctionConfiguration.parse(minimal).storage.seal, "every segment is sealed by default")
        #expect(try !JunctionConfiguration.parse(minimal + "\n[storage]\nseal = false\n").storage.seal)
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[storage]\nseal = 0\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "storage.seal" && e.line == 6 && e.message.contains("true or false")
        }
    }

    @Test func unknownKeyNamesKeyAndLine() {
        let text = minimal + "\nstall_secnds = 5\n"
        #expect {
            try JunctionConfiguration.parse(text)
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "camera.stall_secnds" && e.line == 5 && e.message.contains("unknown key") && e.message.contains("camera.stall_seconds")
        }
    }

    @Test func badSizeSaysWhatToWrite() {
        let text = minimal + "\n[storage]\nmax_bytes = \"24XB\"\n"
        #expect {
            try JunctionConfiguration.parse(text)
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "storage.max_bytes" && e.line == 6 && e.message.contains("\"24GB\"")
                && e.description.hasPrefix("junction.toml:6: storage.max_bytes:")
        }
    }

    @Test func missingCameraIsAnError() {
        #expect {
            try JunctionConfiguration.parse("[device]\nid = \"a\"\n")
        } throws: { error in
            (error as! ConfigError).key == "camera.url"
        }
    }

    @Test func outOfRangeSegmentSeconds() {
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[storage]\nsegment_seconds = 1\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "storage.segment_seconds" && e.message.contains("2 to 120")
        }
    }

    @Test func bothBudgetsRefused() {
        #expect(throws: ConfigError.self) {
            try JunctionConfiguration.parse(minimal + "\n[storage]\nmax_bytes = \"1GB\"\nmax_percent = 80\n")
        }
    }

    @Test func wrongTypeAndBadTransport() {
        #expect {
            try JunctionConfiguration.parse(minimal + "\nstall_seconds = \"five\"\n")
        } throws: { error in (error as! ConfigError).message.contains("whole number") }
        #expect {
            try JunctionConfiguration.parse(minimal + "\ntransport = \"http\"\n")
        } throws: { error in (error as! ConfigError).message.contains("\"tcp\"") }
    }

    @Test func theReaderIsFFmpegUnlessJunctionIsAskedFor() throws {
        #expect(try JunctionConfiguration.parse(minimal).camera.reader == "ffmpeg")
        #expect(try JunctionConfiguration.parse(minimal + "\nreader = \"Junction\"\n").camera.reader == "junction")
        let e = try #require(throws: ConfigError.self) { try JunctionConfiguration.parse(minimal + "\nreader = \"gstreamer\"\n") }
        #expect(e.key == "camera.reader" && e.message.contains("\"ffmpeg\"") && e.message.contains("\"junction\""))
    }

    @Test func syntaxErrorsHaveLines() {
        #expect {
            try JunctionConfiguration.parse("[device]\nid = thaithuy\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.line == 2 && e.message.contains("double quotes")
        }
        #expect {
            try JunctionConfiguration.parse("[device\n")
        } throws: { error in (error as! ConfigError).line == 1 }
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[device]\n")
        } throws: { error in (error as! ConfigError).message.contains("already defined") }
    }

    @Test func cameraOptionsPassThrough() throws {
        let c = try JunctionConfiguration.parse(minimal + "\n[camera.options]\nbuffer_size = 1048576\nuser_agent = \"junction\"\n")
        #expect(c.camera.options == ["buffer_size": "1048576", "user_agent": "junction"])
    }

    @Test func passwordIsRedacted() {
        #expect(JunctionConfiguration.Camera.redact("rtsp://admin:s3cret@10.0.0.1/x") == "rtsp://admin:***@10.0.0.1/x")
        #expect(JunctionConfiguration.Camera.redact("rtsp://10.0.0.1/x") == "rtsp://10.0.0.1/x")
    }

    @Test func byteSizes() {
        #expect(ByteSize(parsing: "24GB")?.bytes == 24_000_000_000)
        #expect(ByteSize(parsing: "1.5GiB")?.bytes == 1_610_612_736)
        #expect(ByteSize(parsing: "512 MB")?.bytes == 512_000_000)
        #expect(ByteSize(parsing: "4096")?.bytes == 4096)
        #expect(ByteSize(parsing: "12XB") == nil)
        #expect(ByteSize(parsing: "GB") == nil)
        #expect(ByteSize.format(1_234_567_890) == "1.23 GB")
    }

    @Test func tomlValues() throws {
        let doc = try TOMLDocument(parsing: """
            a = "x\\ty\\u00e9"
            b = 'lit\\eral'
            c = [1, 2,
                 3] # list over lines
            d = 1_000
            e = 2.5
            f = true
            [t."q k"]
            g = -3
            """)
        #expect(doc["a"]?.kind == .string("x\ty\u{e9}"))
        #expect(doc["b"]?.kind == .string("lit\\eral"))
        #expect(doc["c"]?.kind == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(doc["d"]?.kind == .integer(1000))
        #expect(doc["e"]?.kind == .float(2.5))
        #expect(doc["f"]?.kind == .bool(true))
        #expect(doc["t.q k.g"]?.kind == .integer(-3))
        #expect(doc["t.q k.g"]?.line == 9)
    }

    @Test func serverSection() throws {
        let c = try JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"https://commune.example.vn/\"\ntoken = \"abc\"\n")
        #expect(c.server == .init(url: "https://commune.example.vn", token: "abc", tusURL: "https://commune.example.vn/files/", allowInsecureHTTP: false))
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"http://10.0.0.1:8080\"\ntoken = \"abc\"\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "server.url" && e.message.contains("allow_insecure_http")
        }
        let plain = try JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"http://10.0.0.1:8080\"\ntoken = \"abc\"\nallow_insecure_http = true\n")
        #expect(plain.server?.tusURL == "http://10.0.0.1:8080/files/")
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"https://c.vn\"\n")
        } throws: { error in (error as! ConfigError).key == "server.token" }
        #expect(try JunctionConfiguration.parse(minimal).server == nil)
    }

    @Test func uplinkTuning() throws {
        let c = try JunctionConfiguration.parse(minimal + """

            [server]
            url = "https://c.vn"
            token = "abc"
            heartbeat_seconds = 15
            [upload]
            max_kbps = 512
            order = "newest_first"
            """)
        #expect(c.server?.heartbeatSeconds == 15 && c.upload.maxKbps == 512 && c.upload.order == .newestFirst)
        #expect(try JunctionConfiguration.parse(minimal).upload.order == .oldestFirst)
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[upload]\norder = \"random\"\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "upload.order" && e.message.contains("oldest_first")
        }
        #expect {
            try JunctionConfiguration.parse(minimal + "\n[server]\nurl = \"https://c.vn\"\ntoken = \"a\"\nca_file = \"/nonexistent/ca.pem\"\n")
        } throws: { error in
            let e = error as! ConfigError
            return e.key == "server.ca_file" && e.message.contains("cannot be read")
        }
    }

    /// The installer edits junction.toml on a laptop: Windows editors save "\r\n" line ends.
    @Test func windowsLineEndingsParseWithRightLineNumbers() throws {
        let crlf = minimal.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n[storage]\r\nsegment_seconds = 1\r\n"
        #expect(throws: ConfigError.self) { try JunctionConfiguration.parse(crlf) }
        do { _ = try JunctionConfiguration.parse(crlf) } catch {
            #expect(error.line == 6 && error.key == "storage.segment_seconds", "\(error)")
        }
        let c = try JunctionConfiguration.parse(minimal.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n")
        #expect(c.device.id == "thaithuy-0042" && c.camera.url.hasSuffix("/101"))
    }

    /// The image's junction.toml (every key commented): as shipped it names what to fill in;
    /// filled in, in Windows line ends, every commented key uncommented still parses.
    @Test func imageTemplateNamesWhatToChangeAndEveryKeyIsKnown() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("image/junction.toml").path
        let template = try String(contentsOfFile: path, encoding: .utf8)
        do { _ = try JunctionConfiguration.parse(template); Issue.record("the blank template parsed") } catch {
            #expect(error.key == "device.id" || error.key == "camera.url", "\(error)")
        }
        let filled = template
            .replacingOccurrences(of: "id = \"\"", with: "id = \"thaithuy-0042\"")
            .replacingOccurrences(of: "url = \"\"", with: "url = \"rtsp://admin:pw@192.168.1.64:554/Streaming/Channels/101\"")
        let c = try JunctionConfiguration.parse(filled.replacingOccurrences(of: "\n", with: "\r\n"))
        #expect(c.device.id == "thaithuy-0042" && c.storage.path == "/var/lib/junction")
        // Uncomment every "# key = value" line (but for the one of each exclusive pair).
        var lines: [String] = []
        for line in filled.split(separator: "\n", omittingEmptySubsequences: false) {
            var l = String(line)
            if l.hasPrefix("# [") { l.removeFirst(2) }
            else if l.hasPrefix("# "), let eq = l.range(of: " = "),
                    l[l.index(l.startIndex, offsetBy: 2)..<eq.lowerBound].allSatisfy({ $0.isLowercase || $0 == "_" }),
                    !l.hasPrefix("# max_bytes"), !l.hasPrefix("# tus_url"), !l.hasPrefix("# ca_file") { l.removeFirst(2) }
            lines.append(l)
        }
        let all = lines.joined(separator: "\n")
        #expect(all.contains("\nheartbeat_seconds = 60") && all.contains("\n[server]"))
        let full = try JunctionConfiguration.parse(all)
        #expect(full.storage.budget == .percent(90))
        #expect(full.server?.url == "https://commune.example.vn")
    }
}
