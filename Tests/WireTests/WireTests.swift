import Hostile
import Testing
import Wire

@Suite struct UploadMetadataTests {
    @Test func roundTripsTheContractKeys() throws {
        var m = UploadMetadata([("device", "thaithuy-0042"), ("camera", "cam1"),
                                ("start", "2026-11-29T14:02:00Z"), ("end", "2026-11-29T14:02:10Z"),
                                ("sha256", String(repeating: "ab", count: 32)), ("filename", "20261129T140200.000Z.mp4")])
        m["reason"] = "tai nạn QL37B, 14:02"
        let header = m.encoded
        #expect(header.hasPrefix("device dGhhaXRodXktMDA0Mg==,camera Y2FtMQ==,"))
        let back = try UploadMetadata(decoding: header)
        #expect(back == m)
        #expect(back["reason"] == "tai nạn QL37B, 14:02")
    }

    @Test func refusesBadHeaders() {
        #expect(throws: UploadMetadata.DecodingError.self) { try UploadMetadata(decoding: "device not*base64") }
        #expect(throws: UploadMetadata.DecodingError.self) { try UploadMetadata(decoding: "a YQ==,a Yg==") }
        #expect((try? UploadMetadata(decoding: "flag"))?["flag"] == "")
    }
}

@Suite struct HTTPDateTests {
    @Test func parsesAndFormatsIMFFixdate() {
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.format(Timestamp(milliseconds: 784_111_777_000)) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(Timestamp(rfc3339: "2026-11-29T00:00:00Z")!) == "Sun, 29 Nov 2026 00:00:00 GMT")
        #expect(HTTPDate.parse("yesterday") == nil)
    }
}

/// Issue 11, items 14, 16 and 22: headers and typed times that used to overflow the calendar
/// arithmetic (exit 132) or pass as dates that do not exist.
@Suite struct HostileTimeTests {
    @Test func anUploadExpiresFarInTheFutureIsRefusedNotACrash() {
        #expect(HTTPDate.parse("Thu, 01 Jan 99999999999999999 00:00:00 GMT") == nil)
        #expect(HTTPDate.parse("Thu, 01 Jan -9223372036854775808 00:00:00 GMT") == nil)
        #expect(HTTPDate.parse("Thu, 99 Jan 2026 00:00:00 GMT") == nil)
        #expect(HTTPDate.parse("Thu, 30 Feb 2026 00:00:00 GMT") == nil)
        #expect(HTTPDate.parse("Thu, 01 Jan 2026 99:00:00 GMT") == nil)
        #expect(HTTPDate.parse("Thu, +1 Jan 2026 00:00:00 GMT") == nil)
        // The bound itself: the last second RFC 3339 can write still parses.
        #expect(HTTPDate.parse("Fri, 31 Dec 9999 23:59:59 GMT") == 253_402_300_799)
    }

    @Test func relativeTimesBeyondACenturyOrNotNumbersAreParseErrors() throws {
        let now = Timestamp(rfc3339: "2026-11-29T15:30:00Z")!
        for text in ["-1e300d", "-infs", "+infs", "-nans", "+1000000000d", "-0x10s", "+9223372036854775807s", "-1.5.5m", "-s", "+d"] {
            #expect(throws: TimeExpression.ParseError.self, "\(text)") { try TimeExpression.parse(text, now: now) }
        }
        #expect(try TimeExpression.parse("-36600d", now: now) < now)           // 100 years: the bound
        #expect(throws: TimeExpression.ParseError.self) { try TimeExpression.parse("-36601d", now: now) }
        let far = (try? TimeExpression.parse("+1000000000d", now: now)) == nil
        #expect(far)
        #expect(throws: TimeExpression.ParseError.self) { try TimeExpression.parse(String(repeating: "9", count: 5000), now: now) }
    }

    @Test func datesThatDoNotExistAreRefused() {
        #expect(Timestamp(rfc3339: "2026-02-30T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2026-04-31T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2028-02-29T00:00:00Z") != nil)
        // More than three fractional digits (microseconds, nanoseconds) are read to the
        // millisecond; four or more once trapped the parser (fuzz finding, issue 13).
        #expect(Timestamp(rfc3339: "2026-11-29T14:02:00.123456Z")?.milliseconds == Timestamp(rfc3339: "2026-11-29T14:02:00.123Z")!.milliseconds)
        #expect(Timestamp(rfc3339: "2026-11-29T14:02:00.1234567890123Z") != nil)
        #expect(Timestamp(rfc3339: "2026-11-29T14:02:00.5Z")?.milliseconds == Timestamp(rfc3339: "2026-11-29T14:02:00.500Z")!.milliseconds)
        #expect(Timestamp(rfc3339: "2100-02-29T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "0000-01-01T00:00:00Z") == nil)
        #expect(throws: TimeExpression.ParseError.self) { try TimeExpression.parse("2026-02-30 10:00") }
    }

    @Test func arithmeticSaturatesAtTheRepresentableRange() {
        let t = Timestamp(rfc3339: "2026-11-29T15:30:00Z")!
        #expect(t + 1e300 == Timestamp.latest)
        #expect(t + -Double.infinity == Timestamp.earliest)
        #expect(t + Double.nan == Timestamp.earliest)
        #expect(Timestamp(milliseconds: .max).rfc3339 == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp(milliseconds: .min).rfc3339 == "0001-01-01T00:00:00Z")
    }
}

@Suite struct PreviewSheetTests {
    let t0 = Timestamp(rfc3339: "2026-11-29T14:00:00Z")!
    static func jpeg(_ n: Int) -> [UInt8] { fakeJPEG(n) }

    @Test func aSheetReadsBackWholeAndPartByPart() {
        let pictures = (0..<5).map { PreviewSheet.Picture(at: t0 + Double($0 * 2), jpeg: Self.jpeg(100 + $0)) }
        let bytes = PreviewSheet.encode(pictures)
        let whole = PreviewSheet.scan(bytes, whole: true)
        #expect(whole.problem == nil && whole.consumed == bytes.count)
        #expect(whole.entries.map(\.at) == pictures.map(\.at))
        #expect(whole.entries.map { Array(bytes[$0.offset..<$0.offset + $0.length]) } == pictures.map(\.jpeg))
        // While it arrives: every cut gives the whole pictures before it and no problem; the
        // same cut of a file said to be whole is a problem.
        var seen = 0
        var boundaries: Set<Int> = [PreviewSheet.magic.count]
        for p in pictures { boundaries.insert(boundaries.max()! + 12 + p.jpeg.count) }
        for cut in 0..<bytes.count {
            let part = PreviewSheet.scan(Array(bytes.prefix(cut)), whole: false)
            #expect(part.problem == nil, "cut at \(cut)")
            #expect(part.entries.count >= seen)
            seen = part.entries.count
            #expect((PreviewSheet.scan(Array(bytes.prefix(cut)), whole: true).problem == nil) == boundaries.contains(cut), "cut at \(cut)")
        }
        #expect(seen == 4)
    }

    @Test func boundsHoldAtTheBound() {
        let atBound = PreviewSheet.encode([.init(at: t0, jpeg: Self.jpeg(PreviewSheet.Limits.maxPictureBytes))])
        #expect(PreviewSheet.scan(atBound, whole: true).entries.count == 1)
        let over = PreviewSheet.encode([.init(at: t0, jpeg: Self.jpeg(PreviewSheet.Limits.maxPictureBytes + 1))])
        #expect(PreviewSheet.scan(over, whole: true).problem?.contains("bytes") == true)
        let many = PreviewSheet.encode((0..<PreviewSheet.Limits.maxPictures).map { .init(at: t0 + Double($0), jpeg: Self.jpeg(17)) })
        #expect(PreviewSheet.scan(many, whole: true).entries.count == PreviewSheet.Limits.maxPictures)
        let tooMany = PreviewSheet.encode((0...PreviewSheet.Limits.maxPictures).map { .init(at: t0 + Double($0), jpeg: Self.jpeg(17)) })
        #expect(PreviewSheet.scan(tooMany, whole: true).problem?.contains("more than") == true)
        for at in [PreviewSheet.Limits.earliest, PreviewSheet.Limits.latest] {
            #expect(PreviewSheet.scan(PreviewSheet.encode([.init(at: at, jpeg: Self.jpeg(17))]), whole: true).problem == nil)
        }
        for at in [PreviewSheet.Limits.earliest + -0.001, PreviewSheet.Limits.latest + 0.001] {
            #expect(PreviewSheet.scan(PreviewSheet.encode([.init(at: at, jpeg: Self.jpeg(17))]), whole: true).problem?.contains("time") == true)
        }
        var notJPEG = PreviewSheet.encode([.init(at: t0, jpeg: Self.jpeg(17))])
        notJPEG[notJPEG.count - 1] = 0
        #expect(PreviewSheet.scan(notJPEG, whole: true).problem?.contains("not a JPEG") == true)
        #expect(PreviewSheet.scan(Array("JPREVIEW2\n".utf8), whole: true).problem != nil)
    }

    /// Issue 22: a 192-byte JPEG declaring 65535 × 65535 was served to the officer's browser.
    /// The frame header's sides are bounded (8–2560, 1280 × 2560 pixels in all), and a picture
    /// without one is not a JPEG.
    @Test func aPicturesDeclaredSizeIsBounded() {
        func problem(_ jpeg: [UInt8]) -> String? { PreviewSheet.scan(PreviewSheet.encode([.init(at: t0, jpeg: jpeg)]), whole: true).problem }
        #expect(problem(fakeJPEG(192, width: 65535, height: 65535))?.contains("65535 × 65535") == true)
        #expect(problem(fakeJPEG(192, width: 1280, height: 2560)) == nil, "at the bound")
        #expect(problem(fakeJPEG(192, width: 1281, height: 2560)) != nil && problem(fakeJPEG(192, width: 2560, height: 2560)) != nil)
        #expect(problem(fakeJPEG(192, width: 8, height: 8)) == nil && problem(fakeJPEG(192, width: 7, height: 8)) != nil)
        #expect(problem([0xFF, 0xD8] + [UInt8](repeating: 7, count: 100) + [0xFF, 0xD9])?.contains("no frame header") == true)
        // Segments before the frame header are walked; one whose length runs past the picture stops it.
        let app0: [UInt8] = [0xFF, 0xE0, 0x00, 0x10] + [UInt8](repeating: 0, count: 14)
        let withApp = [0xFF, 0xD8] + app0 + Array(fakeJPEG(100).dropFirst(2))
        #expect(problem(withApp) == nil)
        #expect(problem([0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 40) + [0xFF, 0xD9]) != nil)
    }

    @Test func picturesGoCoarseToFine() {
        #expect(PreviewSheet.coarseToFine(0) == [])
        #expect(PreviewSheet.coarseToFine(1) == [0])
        #expect(PreviewSheet.coarseToFine(9) == [0, 8, 4, 2, 6, 1, 3, 5, 7])
        for n in [2, 3, 10, 300, 2000] {
            let order = PreviewSheet.coarseToFine(n)
            #expect(order.sorted() == Array(0..<n), "a permutation of \(n)")
            // The first five already span the range: none of its quarters is left without one.
            if n >= 8 { #expect(Set(order.prefix(5).map { $0 * 4 / n }).count == 4) }
        }
    }
}
