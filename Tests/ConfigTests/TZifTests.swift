import Foundation
import Testing
import Hostile
@testable import Config

/// The box's own reader of /usr/share/zoneinfo (issue 25: no ICU in the box): known transitions,
/// the footer's rules, malformed files, and agreement with Python's zoneinfo (an independent
/// reader of the same files) over many instants of zones chosen for their oddities.
@Suite struct TZifTests {
    static func zone(_ name: String) throws -> LocalTime { try LocalTime.load(identifier: name) }
    static func utc(_ text: String) -> Int64 {
        Int64(ISO8601DateFormatter().date(from: text)!.timeIntervalSince1970)
    }
    static func offset(_ z: LocalTime, _ text: String) -> Int { z.offsetSeconds(milliseconds: utc(text) * 1000) }

    @Test func hoChiMinhIsSevenHoursAheadAndWasEightBefore1975() throws {
        let z = try Self.zone("Asia/Ho_Chi_Minh")
        #expect(Self.offset(z, "2026-12-07T15:00:00Z") == 7 * 3600)
        #expect(Self.offset(z, "2150-06-01T00:00:00Z") == 7 * 3600, "past the last transition: the footer <+07>-7")
        #expect(Self.offset(z, "1970-01-01T00:00:00Z") == 8 * 3600, "Saigon kept +08 until 1975")
        // 1975-06-13 00:00 local +08 went to +07: 1975-06-12T16:00:00Z.
        #expect(Self.offset(z, "1975-06-12T15:59:59Z") == 8 * 3600)
        #expect(Self.offset(z, "1975-06-12T16:00:00Z") == 7 * 3600)
        #expect(z.minuteOfDay(milliseconds: Self.utc("2026-12-07T17:30:00Z") * 1000) == 30, "00:30 the next day in Hà Nội")
    }

    /// The image's own file (Debian trixie's tzdata, 2025: 337 bytes where bookworm's is 351),
    /// kept beside the fuzz seeds: what a box reads.
    @Test func theImagesHoChiMinhFileIsRead() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FuzzTests/Corpus/tzif/Ho_Chi_Minh-trixie.tzif").path
        let z = LocalTime(zone: try TZif.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))))
        #expect(Self.offset(z, "2026-12-07T15:00:00Z") == 7 * 3600 && Self.offset(z, "1970-01-01T00:00:00Z") == 8 * 3600)
        #expect(Self.offset(z, "2300-01-01T00:00:00Z") == 7 * 3600)
    }

    @Test func newYorkChangesAtTwoInTheMorningLocalTime() throws {
        let z = try Self.zone("America/New_York")
        // 2026: second Sunday of March (the 8th) at 02:00 EST = 07:00Z; first Sunday of November (the 1st) at 02:00 EDT = 06:00Z.
        #expect(Self.offset(z, "2026-03-08T06:59:59Z") == -5 * 3600)
        #expect(Self.offset(z, "2026-03-08T07:00:00Z") == -4 * 3600)
        #expect(Self.offset(z, "2026-11-01T05:59:59Z") == -4 * 3600)
        #expect(Self.offset(z, "2026-11-01T06:00:00Z") == -5 * 3600)
        // Far past the file's transitions: the footer's rule (2100: March 14, November 7).
        #expect(Self.offset(z, "2100-03-14T06:59:59Z") == -5 * 3600)
        #expect(Self.offset(z, "2100-03-14T07:00:00Z") == -4 * 3600)
        #expect(Self.offset(z, "2100-11-07T05:59:59Z") == -4 * 3600)
        #expect(Self.offset(z, "2100-11-07T06:00:00Z") == -5 * 3600)
    }

    @Test func aSouthernZoneHasDaylightTimeAcrossTheNewYear() throws {
        let z = try Self.zone("Australia/Sydney")
        #expect(Self.offset(z, "2026-01-15T00:00:00Z") == 11 * 3600)
        #expect(Self.offset(z, "2026-07-15T00:00:00Z") == 10 * 3600)
        #expect(Self.offset(z, "2200-01-01T00:00:00Z") == 11 * 3600)
        #expect(Self.offset(z, "2200-07-01T00:00:00Z") == 10 * 3600)
    }

    @Test func utcNeedsNoFileAndUnknownZonesSayWhy() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("tz-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let u = try LocalTime.load(identifier: "UTC", directory: empty)
        #expect(u.offsetSeconds(milliseconds: 1_800_000_000_000) == 0)
        #expect(throws: TZifError.self) { try LocalTime.load(identifier: "Asia/Ho_Chi_Minh", directory: empty) }
        do { _ = try LocalTime.load(identifier: "Asia/Ho_Chi_Minh", directory: empty) } catch {
            #expect(error.message.contains("tzdata"))
        }
        #expect(LocalTime(identifier: "Asia") == nil, "a folder of zones is not a zone")
        #expect(LocalTime(identifier: "Mars/Olympus_Mons") == nil)
        // tzdata's right/ zones count leap seconds: refused, saying so.
        do {
            _ = try LocalTime.load(identifier: "right/Asia/Ho_Chi_Minh")
            Issue.record("a right/ zone was taken")
        } catch {
            #expect(error.message.contains("leap seconds"), "\(error.message)")
        }
    }

    // MARK: malformed files

    static let hcm = try! [UInt8](Data(contentsOf: URL(fileURLWithPath: "/usr/share/zoneinfo/Asia/Ho_Chi_Minh")))

    static func fails(_ bytes: [UInt8], _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try TZif.parse(bytes)
            Issue.record("parsed", sourceLocation: sourceLocation)
        } catch {
            #expect(error.message.contains(words), "\(error.message)", sourceLocation: sourceLocation)
        }
    }

    static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    /// A version 1 file: `types` as (offset, dst, designation index), one designation "ABC\0".
    static func v1(times: [Int32], indices: [UInt8], types: [(Int32, UInt8, UInt8)], leaps: Int = 0, chars: [UInt8] = Array("ABC\0".utf8)) -> [UInt8] {
        var b = Array("TZif".utf8) + [0] + [UInt8](repeating: 0, count: 15)
        for c in [0, 0, leaps, times.count, types.count, chars.count] { b += u32(UInt32(c)) }
        for t in times { b += u32(UInt32(bitPattern: t)) }
        b += indices
        for (o, d, i) in types { b += u32(UInt32(bitPattern: o)) + [d, i] }
        b += chars
        b += [UInt8](repeating: 0, count: leaps * 8)
        return b
    }

    @Test func aWellFormedVersionOneFileIsRead() throws {
        let z = try TZif.parse(Self.v1(times: [100, 200], indices: [1, 0], types: [(3600, 0, 0), (7200, 1, 0)]))
        #expect(z.offset(atUTC: 99) == 3600 && z.offset(atUTC: 100) == 7200 && z.offset(atUTC: 199) == 7200 && z.offset(atUTC: 200) == 3600)
        #expect(z.offset(atUTC: .max) == 3600 && z.offset(atUTC: .min) == 3600)
        #expect(z.types[1].abbreviation == "ABC" && z.types[1].isDST)
    }

    @Test func malformedFilesAreRefusedWithTheReason() {
        Self.fails([], "not a TZif file")
        Self.fails(Array("TZjf".utf8) + [UInt8](repeating: 0, count: 60), "not a TZif file")
        Self.fails(Array(Self.hcm.prefix(43)), "not a TZif file")
        Self.fails(Array(Self.hcm.prefix(200)), "cut short")
        Self.fails(Array(Self.hcm.dropLast()), "footer that does not end")
        Self.fails(Array(Self.hcm.prefix(Self.hcm.count - 9)) + [0x0A] + Array("<+07>".utf8) + [0x0A], "not a TZ rule")
        var version = Self.hcm
        version[4] = 0x21
        Self.fails(version, "unknown version")
        Self.fails(Self.v1(times: [200, 100], indices: [0, 0], types: [(0, 0, 0)]), "out of order")
        Self.fails(Self.v1(times: [100, 100], indices: [0, 0], types: [(0, 0, 0)]), "out of order")
        Self.fails(Self.v1(times: [100], indices: [1], types: [(0, 0, 0)]), "type 1 of 1")
        Self.fails(Self.v1(times: [], indices: [], types: []), "0 local time types")
        Self.fails(Self.v1(times: [], indices: [], types: [(0, 0, 0)], chars: []), "no time zone designations")
        Self.fails(Self.v1(times: [], indices: [], types: [(0, 0, 4)]), "designation at 4")
        Self.fails(Self.v1(times: [], indices: [], types: [(0, 2, 0)]), "daylight flag of 2")
        Self.fails(Self.v1(times: [], indices: [], types: [(Int32.min, 0, 0)]), "beyond ±26 h")
        Self.fails(Self.v1(times: [], indices: [], types: [(93_600, 0, 0)]), "beyond ±26 h")
        Self.fails(Self.v1(times: [], indices: [], types: [(0, 0, 0)], leaps: 1), "leap seconds")
        // A count far beyond the file, as a hostile card would hold: refused before anything is read.
        var huge = Self.v1(times: [], indices: [], types: [(0, 0, 0)])
        huge.replaceSubrange(32..<36, with: Self.u32(UInt32.max))
        Self.fails(huge, "a count of 4294967295")
        huge.replaceSubrange(32..<36, with: Self.u32(UInt32(TZif.maxBytes)))
        Self.fails(huge, "cut short")
        Self.fails([UInt8](repeating: 0, count: TZif.maxBytes + 1), "over 65536 bytes")
    }

    @Test func boundsAreTestedAtTheBound() throws {
        // ±26 h less a second are the largest offsets taken; 256 types the most.
        let edge = try TZif.parse(Self.v1(times: [0], indices: [1], types: [(93_599, 0, 0), (-93_599, 0, 0)]))
        #expect(edge.offset(atUTC: -1) == 93_599 && edge.offset(atUTC: 0) == -93_599)
        let many = try TZif.parse(Self.v1(times: [0], indices: [255], types: (0..<256).map { (Int32($0), 0, 0) }))
        #expect(many.offset(atUTC: 0) == 255)
        Self.fails(Self.v1(times: [], indices: [], types: (0..<257).map { (Int32($0), 0, 0) }), "257 local time types")
    }

    // MARK: TZ rules (the footer)

    @Test func rulesParseAndRefuse() throws {
        #expect(try PosixTZ.parse("<+07>-7") == PosixTZ(standard: 25_200, daylight: nil))
        let ny = try PosixTZ.parse("EST5EDT,M3.2.0,M11.1.0")
        #expect(ny.standard == -18_000 && ny.daylight?.offset == -14_400 && ny.daylight?.start == .init(day: .month(3, week: 2, weekday: 0), time: 7200))
        let nuuk = try PosixTZ.parse("<-02>2<-01>,M3.5.0/-1,M10.5.0/0")
        #expect(nuuk.daylight?.start.time == -3600 && nuuk.daylight?.offset == -3600)
        let dublin = try PosixTZ.parse("IST-1GMT0,M10.5.0,M3.5.0/1")
        #expect(dublin.standard == 3600 && dublin.daylight?.offset == 0)
        _ = try PosixTZ.parse("XXX-24:59:59YYY,J1/167:59:59,J365/-167")
        for bad in ["", "AB5", "<AB>5", "EST", "EST25", "EST5EDT", "EST5EDT,M13.1.0,M11.1.0", "EST5EDT,M3.6.0,M11.1.0",
                    "EST5EDT,M3.2.7,M11.1.0", "EST5EDT,J0,J365", "EST5EDT,J366,J1", "EST5EDT,366,1", "EST5EDT,M3.2.0/168,M11.1.0",
                    "EST5EDT,M3.2.0,M11.1.0x", "EST5:60", "<A B>5", "EST5EDT,M3.2.0"] {
            #expect(throws: TZifError.self, "\(bad)") { try PosixTZ.parse(bad) }
        }
    }

    @Test func aRuleAllYearInDaylightTimeStaysThere() throws {
        // RFC 8536's example of a version 3 rule: daylight time all year.
        let r = try PosixTZ.parse("EST5EDT4,0/0,J365/25")
        for day in stride(from: Int64(0), to: 366, by: 7) {
            #expect(r.offset(atUTC: Self.utc("2027-01-01T12:00:00Z") + day * 86_400) == -14_400)
        }
    }

    // MARK: against Python's zoneinfo

    /// Zones chosen for what they exercise: Vietnam; northern and southern DST; negative DST
    /// (Dublin); version 3 rules with times before midnight (Nuuk); 45-minute offsets (Chatham);
    /// a zone that skipped a day (Apia); a 2-hour DST (Troll); Casablanca's changing rules.
    static let oracleZones = ["Asia/Ho_Chi_Minh", "America/New_York", "Europe/Berlin", "Australia/Sydney", "Europe/Dublin",
                              "America/Nuuk", "Pacific/Chatham", "Pacific/Apia", "Antarctica/Troll", "Africa/Casablanca",
                              "Asia/Kolkata", "America/Sao_Paulo", "America/Santiago", "Asia/Tehran", "Etc/GMT+7", "UTC"]

    @Test func agreesWithPythonsZoneinfo() throws {
        // Instants from 1901 to 2300: a fixed pseudo-random spread, and each zone's transitions ±1 s.
        var rng = SplitMix(seed: 25)
        var instants: [Int64] = (0..<1500).map { _ in Int64(rng.next() % 12_620_000_000) - 2_177_000_000 }
        for y in stride(from: 2030, through: 2300, by: 13) {
            // Around the footer's changes, where a rule's arithmetic is tried.
            let base = Self.utc("\(y)-03-01T00:00:00Z")
            instants += (0..<120).map { base + Int64($0) * 86_400 * 2 + 3600 * Int64($0 % 24) }
        }
        var problems: [String] = []
        for name in Self.oracleZones {
            let z = try Self.zone(name)
            let mine = z.zone.transitions.filter { $0 > -2_177_000_000 && $0 < 10_000_000_000 }.flatMap { [$0 - 1, $0] }
            let all = instants + mine
            let theirs = try Self.python(zone: name, instants: all)
            try #require(theirs.count == all.count)
            for (t, o) in zip(all, theirs) where z.offsetSeconds(milliseconds: t * 1000) != o {
                problems.append("\(name) at \(t): \(z.offsetSeconds(milliseconds: t * 1000)) here, \(o) in Python")
            }
        }
        let count = problems.count
        #expect(count == 0, "differences, e.g. \(problems.prefix(5))")
    }

    static func python(zone: String, instants: [Int64]) throws -> [Int] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", """
            import sys, datetime, zoneinfo
            z = zoneinfo.ZoneInfo(sys.argv[1])
            out = []
            for line in sys.stdin:
                t = int(line)
                out.append(str(int(datetime.datetime.fromtimestamp(t, z).utcoffset().total_seconds())))
            print("\\n".join(out))
            """, zone]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        let text = instants.map(String.init).joined(separator: "\n") + "\n"
        let writer = Thread { input.fileHandleForWriting.write(Data(text.utf8)); try? input.fileHandleForWriting.close() }
        writer.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
    }
}

