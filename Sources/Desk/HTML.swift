import Commune
import Foundation
import Wire

/// HTML made in Swift, with one rule: every text that did not come from this file goes through
/// `escape` (device names, reasons, errors a box sent, operator names). Control characters are
/// shown as `\u{…}`, as in the terminal (`TerminalText`), so an escape sequence stays visible.
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in TerminalText.safe(text).unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A whole page: the header with the language switch (and sign-out when signed in), then
    /// `body`. No inline script or style: the Content-Security-Policy forbids both. A page whose
    /// content is still changing (a request while footage arrives) gives `refreshSeconds`: the
    /// browser then reloads it by itself, no script needed.
    static func page(title: String, language: Language, session: Catalog.Session? = nil, refreshSeconds: Int? = nil,
                     body: String) -> String {
        let t = { (k: Key) in escape(Strings.text(k, language)) }
        let other: Language = language == .vi ? .en : .vi
        var header = """
            <header><a class="brand" href="/">\(t(.appName))</a>
            <nav><a class="lang" href="/lang/\(other.rawValue)" hreflang="\(other.rawValue)" lang="\(other.rawValue)">\(t(.otherLanguage))</a>
            """
        if let session {
            header += """
                <a href="/boxes">\(t(.boxes))</a><a href="/requests">\(t(.requests))</a>\(session.chief ? "<a href=\"/audit\">\(t(.audit))</a>" : "")
                <span class="who">\(t(.signedInAs)) <b>\(escape(session.operator))</b></span>
                <form method="post" action="/sign-out"><input type="hidden" name="csrf" value="\(escape(session.csrf))"><button>\(t(.signOut))</button></form>
                """
        }
        header += "</nav></header>"
        return """
            <!doctype html>
            <html lang="\(language.rawValue)"><head><meta charset="utf-8">\(refreshSeconds.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">" } ?? "")
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title)) · Junction</title><link rel="stylesheet" href="/desk.css">
            <link rel="icon" href="/desk.svg" type="image/svg+xml"></head>
            <body>\(header)<main>\(body)</main></body></html>
            """
    }

    static func notice(_ text: String, kind: String = "error") -> String {
        "<p class=\"notice \(kind)\" role=\"alert\">\(escape(text))</p>"
    }
}

/// Dates and sizes in the local form officers read: dd/mm/yyyy HH:mm in the commune's time zone
/// (`[desk] time_zone` in commune.toml, Asia/Ho_Chi_Minh by default), sizes with a decimal comma
/// in Vietnamese.
struct LocalForm: Sendable {
    let timeZone: TimeZone
    let language: Language

    /// "dd/mm/yyyy HH:mm", or "dd/mm/yyyy HH:mm:ss" with `seconds` (what `parse` reads back).
    func dateTime(_ t: Timestamp, seconds: Bool = false) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let date = Date(timeIntervalSince1970: Double(t.clamped.milliseconds) / 1000)
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ v: Int?) -> String { let v = v ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(c.day))/\(two(c.month))/\(c.year ?? 0) \(two(c.hour)):\(two(c.minute))" + (seconds ? ":\(two(c.second))" : "")
    }

    /// A range as officers read it: to the second when either end is not on a whole minute, and
    /// the day written once when both ends fall on it ("03/12/2026 02:12:31 – 02:12:42").
    func span(_ a: Timestamp, _ b: Timestamp) -> String {
        let seconds = a.milliseconds % 60_000 != 0 || b.milliseconds % 60_000 != 0
        let left = dateTime(a, seconds: seconds), right = dateTime(b, seconds: seconds)
        return left + " – " + (left.prefix(11) == right.prefix(11) ? String(right.dropFirst(11)) : right)
    }

    /// The two ends of a timeline's axis: to the second for a range under an hour.
    func axis(_ a: Timestamp, _ b: Timestamp) -> String {
        let seconds = b.seconds(since: a) < 3600
        return "<div class=\"axis\"><span>\(dateTime(a, seconds: seconds))</span><span>\(dateTime(b, seconds: seconds))</span></div>"
    }

    func bytes(_ b: Int64) -> String {
        let units: [(Double, String)] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
        for (size, unit) in units where Double(b) >= size {
            return "\(decimal(Double(b) / size)) \(unit)"
        }
        return "\(b) B"
    }

    func rate(_ bytesPerSecond: Double) -> String {
        "\(decimal(bytesPerSecond * 8 / 1000)) kbit/s"
    }

    /// One decimal, saturating: any Double (±1e300, NaN, a subnormal) becomes text, never a trap
    /// (issue 22: a box's `upload_bytes_per_second` of 1e300 crashed the box list).
    func decimal(_ v: Double) -> String {
        guard v.isFinite else { return "—" }
        let tenths = Int64(saturating: (v * 10).rounded()).magnitude
        let sign = v < 0 && tenths != 0 ? "-" : ""
        return "\(sign)\(tenths / 10)\(language == .vi ? "," : ".")\(tenths % 10)"
    }

    /// Reads "dd/mm/yyyy HH:mm" (or "d/m/yyyy H:mm", seconds optional) in the commune's time
    /// zone; nil when it is not that form, not a real day and time, or outside 2000–2099.
    func parse(_ text: String) -> Timestamp? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, text.count <= 40 else { return nil }
        let date = parts[0].split(separator: "/", omittingEmptySubsequences: false)
        let time = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        guard date.count == 3, time.count == 2 || time.count == 3,
              date.allSatisfy({ (1...4).contains($0.count) && $0.allSatisfy(\.isASCII) }),
              time.allSatisfy({ (1...2).contains($0.count) && $0.allSatisfy(\.isASCII) }),
              let day = Int(date[0]), let month = Int(date[1]), let year = Int(date[2]),
              let hour = Int(time[0]), let minute = Int(time[1]), let second = time.count == 3 ? Int(time[2]) : 0,
              (2000...2099).contains(year), (1...12).contains(month), (1...31).contains(day),
              (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        guard let made = calendar.date(from: components) else { return nil }
        // Calendar rolls 31/02 over to March: a day that does not exist is refused instead.
        let back = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: made)
        guard back.year == year, back.month == month, back.day == day, back.hour == hour, back.minute == minute else { return nil }
        return Timestamp(milliseconds: Int64((made.timeIntervalSince1970 * 1000).rounded()))
    }

    /// "5 min", "3 h", "2 d": how long ago.
    func elapsed(_ seconds: Double) -> String {
        let s = max(0, Int(saturating: seconds))
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" }
        return language == .vi ? "\(s / 86400) ngày" : "\(s / 86400) d"
    }
}
