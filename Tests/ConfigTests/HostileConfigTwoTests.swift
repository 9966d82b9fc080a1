import Foundation
import Hostile
import PropertyBased
import Testing
import Wire
@testable import Config

/// Issue 22, items 15 and 20–22: times and config files that trapped the CLI or were quietly
/// misread.
@Suite struct HostileConfigTwoTests {
    let minimal = """
        [device]
        id = "thaithuy-0042"
        [camera]
        url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
        """

    func error(_ text: String) -> ConfigError? {
        do { _ = try JunctionConfiguration.parse(text); return nil } catch { return error }
    }

    // Item 15: other scripts' digits in a time's seconds trapped `Int(...)!`.
    @Test func digitsFromOtherScriptsAreNotATime() {
        let now = Timestamp(rfc3339: "2026-12-03T10:00:00Z")!
        for text in ["14:02:½½", "14:02:٣٤", "١٤:٠٢", "14:０２", "2026-12-03 14:02:½½", "14:02:²³", "१४:०२"] {
            #expect(throws: TimeExpression.ParseError.self, "\(text)") { try TimeExpression.parse(text, now: now, utcOffsetSeconds: 0) }
        }
        #expect((try? TimeExpression.parse("14:02:59", now: now, utcOffsetSeconds: 0)) == Timestamp(rfc3339: "2026-12-03T14:02:59Z"))
    }

    /// Property: any text of digits, colons and look-alike digits either parses or is refused.
    @Test func anyClockTextParsesOrIsRefused() async {
        let alphabet: [Character] = ["1", "4", "0", "9", ":", "½", "٣", "０", "²", " ", "-", "T", "Z", "+", "."]
        await propertyCheck(count: 500, input: Gen<Int>.int(in: 0...(alphabet.count - 1)).array(of: 1...20)) { picks in
            let text = String(picks.map { alphabet[$0] })
            if let t = try? TimeExpression.parse(text, now: Timestamp(rfc3339: "2026-12-03T10:00:00Z")!, utcOffsetSeconds: 7 * 3600) {
                #expect(Timestamp.validRange.contains(t), "\(text)")
            }
        }
    }

    // Item 20: a NUL after a zone's name passed `junction check` and showed UTC; a TZ that is
    // not a zone silently won over a valid time_zone.
    @Test func aZoneWithANULIsRefusedAndABadTZIsSaidAndNotUsed() {
        let e = error(minimal + "\ntime_zone = \"Asia/Ho_Chi_Minh\\u0000\"\n".replacingOccurrences(of: "\ntime_zone", with: "\n[device]\ntime_zone"))
        #expect(e != nil)
        let inDevice = error("""
            [device]
            id = "thaithuy-0042"
            time_zone = "Asia/Ho_Chi_Minh\\u0000"
            [camera]
            url = "rtsp://192.168.1.64:554/Streaming/Channels/101"
            """)
        #expect(inDevice?.key == "device.time_zone" && inDevice?.message.contains("control character") == true, "\(String(describing: inDevice))")
        for name in ["Asia/Ho_Chi_Minh\u{0}", "../../etc/passwd", "/etc/localtime", "Asia/Ho Chi Minh", "-Asia", String(repeating: "A", count: 65)] {
            #expect(LocalTime(identifier: name) == nil, "\(name)")
        }
        #expect(LocalTime(identifier: "Asia/Ho_Chi_Minh") != nil && LocalTime(identifier: "Etc/GMT+7") != nil)
    }

    // Item 21: control characters in storage.path (and every other text of the file).
    @Test func controlCharactersInAnyValueAreRefused() {
        for bad in ["\\u0000", "\\n", "\\r", "\\u001b[2J", "\\u007f"] {
            let e = error(minimal + "\n[storage]\npath = \"/var/lib/junction\(bad)x\"\n")
            #expect(e?.key == "storage.path" && e?.message.contains("control character") == true, "\(bad): \(String(describing: e))")
        }
        let option = error(minimal + "\n[camera.options]\nrtsp_flags = \"prefer_tcp\\u0000listen\"\n")
        #expect(option?.key == "camera.options.rtsp_flags", "\(String(describing: option))")
        #expect(error(minimal + "\n[storage]\npath = \"/var/lib/junction\"\n") == nil)
    }

    // Item 22: TOML's own corners.
    @Test func tomlCornersAreReadAsTOMLSaysOrRefusedWithWhy() {
        let quoted = error("\"storage.path\" = \"/tmp/x\"\n" + minimal)
        #expect(quoted?.message.contains("not a plain word") == true, "a quoted dotted key set storage.path: \(String(describing: quoted))")
        let long = "[device]\nid = \"a\"\nx = [\n" + String(repeating: "1,\n", count: 1100) + "]\n"
        let e = tomlError(long)
        #expect(e?.contains("more than 1000 lines") == true, "\(String(describing: e))")
        let unclosed = tomlError("x = [\n1,\n2,\n")
        #expect(unclosed?.contains("never closed") == true)
        let big = tomlError("x = 9223372036854775808\n")
        #expect(big?.contains("too large a whole number") == true, "\(String(describing: big))")
        #expect(tomlError("x = -9223372036854775808\n") == nil, "Int64.min: at the bound")
        for bad in ["5_", "_5", "1__0", "1_.5", "1._5"] {
            let m = tomlError("x = \(bad)\n")
            #expect(m != nil, "\(bad) was accepted")
        }
        #expect(try! TOMLDocument(parsing: "x = 1_000\n")["x"]?.kind == .integer(1000))
    }
}

func tomlError(_ text: String) -> String? {
    do { _ = try TOMLDocument(parsing: text); return nil } catch { return error.message }
}
