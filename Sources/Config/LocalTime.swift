#if canImport(Glibc)
import Glibc
#endif

/// The box's local time (`[device] time_zone`): the minute of the day a motion schedule is read
/// at, and the zone times are shown in. Zones come from the image's TZif files
/// (`/usr/share/zoneinfo`, Debian's `tzdata`), read by `TZif`; UTC needs none.
public struct LocalTime: Sendable {
    public static let zoneDirectory = "/usr/share/zoneinfo"
    let zone: TZif

    /// Nil when `identifier` names no time zone here (see `load` for why).
    public init?(identifier: String, directory: String = Self.zoneDirectory) {
        guard let zone = try? Self.load(identifier: identifier, directory: directory) else { return nil }
        self = zone
    }

    init(zone: TZif) { self.zone = zone }

    /// The zone `identifier` names, or why not: not written as zone names are (issue 22:
    /// "Asia/Ho_Chi_Minh\u{0}" was taken, cut at the NUL by the system, and shown as UTC), no
    /// such file, or a file that is not a zone.
    public static func load(identifier: String, directory: String = Self.zoneDirectory) throws(TZifError) -> LocalTime {
        guard isZoneName(identifier) else {
            throw TZifError("is not written as a zone name is (letters, digits, / _ + -, like \"Asia/Ho_Chi_Minh\")")
        }
        let path = directory + "/" + identifier
        let bytes: [UInt8]
        do throws(TZifError) { bytes = try readZoneFile(path) } catch {
            if ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT"].contains(identifier) { return LocalTime(zone: .utc) }
            throw error
        }
        do throws(TZifError) { return LocalTime(zone: try TZif.parse(bytes)) } catch {
            throw TZifError("\(path) \(error.message)")
        }
    }

    /// What a zone name is made of: 1–64 of `A–Z a–z 0–9 / _ + -`, no `..`, not starting with
    /// `/` or `-` ("Asia/Ho_Chi_Minh", "Etc/GMT+7", "UTC").
    public static func isZoneName(_ s: String) -> Bool {
        (1...64).contains(s.utf8.count) && !s.hasPrefix("/") && !s.hasPrefix("-") && !s.contains("..")
            && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2F || $0 == 0x5F || $0 == 0x2B || $0 == 0x2D }
    }

    /// The zone's offset from UTC at `milliseconds` since 1970, in seconds.
    public func offsetSeconds(milliseconds: Int64) -> Int {
        zone.offset(atUTC: milliseconds.floorDiv(1000))
    }

    /// Minutes since local midnight at `milliseconds` since 1970.
    public func minuteOfDay(milliseconds: Int64) -> Int {
        let offset = Int64(offsetSeconds(milliseconds: milliseconds))
        let seconds = (milliseconds.floorDiv(1000) + offset).floorMod(86_400)
        return Int(seconds) / 60
    }

    /// A zone file's bytes, at most `TZif.maxBytes` (zone files are often links: followed).
    static func readZoneFile(_ path: String) throws(TZifError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { throw TZifError("no such zone: \(path) does not exist (is the tzdata package installed?)") }
            throw TZifError("cannot read \(path) (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw TZifError("\(path) is not a zone file (a folder of zones?)") }
        guard st.st_size <= TZif.maxBytes else { throw TZifError("\(path) is over \(TZif.maxBytes) bytes: not a zone file") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TZifError("cannot read \(path) (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: TZif.maxBytes + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 { if errno == EINTR { continue }; throw TZifError("cannot read \(path) (\(String(cString: strerror(errno))))") }
            if n == 0 { break }
            count += n
        }
        guard count <= TZif.maxBytes else { throw TZifError("\(path) is over \(TZif.maxBytes) bytes: not a zone file") }
        return Array(bytes[..<count])
    }
}
