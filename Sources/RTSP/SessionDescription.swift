#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The SDP a camera answers DESCRIBE with (RFC 8866), read for what the client needs: each media
/// section's kind, payload type, encoding and clock rate (`a=rtpmap`), its `a=control` URL and
/// its format parameters (`a=fmtp`: H.264's `sprop-parameter-sets` and `packetization-mode`,
/// H.265's `sprop-vps/sps/pps`, AAC's `config`, `sizelength`, `indexlength`).
///
/// Bounds: the body at most `RTSPResponse.maxBodyBytes` (its reader's), 16 media sections, 64
/// format parameters a section, a parameter set 1 KiB once decoded; lines that are not SDP are
/// skipped, as cameras write odd ones.
public struct SessionDescription: Sendable, Equatable {
    public static let maxMedia = 16
    public static let maxParameters = 64

    public struct Media: Sendable, Equatable {
        /// "video", "audio", "application".
        public var kind: String
        public var payloadType: UInt8?
        /// "H264", "H265", "MPEG4-GENERIC", as written (case kept).
        public var encoding: String?
        public var clockRate: Int?
        /// Audio channels from `rtpmap` (its third field), 1–8 when given.
        public var channels: Int?
        public var control: String?
        /// Format parameters, names lower-cased.
        public var parameters: [String: String] = [:]

        /// H.264's parameter sets from `sprop-parameter-sets` (base64, comma-separated).
        public var h264ParameterSets: [[UInt8]] {
            (parameters["sprop-parameter-sets"] ?? "").split(separator: ",").prefix(8).compactMap { Self.parameterSet(String($0)) }
        }

        static func parameterSet(_ base64: String) -> [UInt8]? {
            guard base64.utf8.count <= 2048, let d = Data(base64Encoded: base64.trimmingSpacesAndTabs, options: .ignoreUnknownCharacters),
                  !d.isEmpty, d.count <= VideoDepacketizer.maxParameterSetBytes else { return nil }
            return Array(d)
        }
    }

    /// The session-level `a=control` (the base for relative media controls), if any.
    public var control: String?
    public var media: [Media] = []

    public init(_ body: [UInt8]) throws(RTSPError) {
        guard body.count <= RTSPResponse.maxBodyBytes else { throw RTSPError("the camera's SDP is over \(RTSPResponse.maxBodyBytes) bytes") }
        let text = String(decoding: body, as: UTF8.self)
        var sawVersion = false
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            guard line.count >= 2, line[line.index(after: line.startIndex)] == "=" else { continue }
            let key = line.first!, value = String(line.dropFirst(2))
            switch key {
            case "v": sawVersion = true
            case "m":
                guard media.count < Self.maxMedia else { throw RTSPError("the camera's SDP has more than \(Self.maxMedia) media sections") }
                let f = value.split(separator: " ")
                guard f.count >= 4 else { throw RTSPError("the camera's SDP has a media line \"\(printable(value.prefix(60)))\" without a format") }
                media.append(Media(kind: String(f[0]), payloadType: UInt8(f[3])))
            case "a":
                let (name, arg) = value.firstIndex(of: ":").map { (String(value[..<$0]), String(value[value.index(after: $0)...])) } ?? (value, "")
                if media.isEmpty {
                    if name == "control" { control = arg }
                    continue
                }
                let i = media.count - 1
                switch name {
                case "control": media[i].control = arg
                case "rtpmap":
                    // "96 H264/90000" or "97 MPEG4-GENERIC/48000/2"
                    let f = arg.split(separator: " ", maxSplits: 1)
                    guard f.count == 2, UInt8(f[0]) == media[i].payloadType else { continue }
                    let enc = f[1].split(separator: "/")
                    media[i].encoding = enc.first.map(String.init)
                    media[i].clockRate = enc.count > 1 ? Int(enc[1]).flatMap { (1...1_000_000).contains($0) ? $0 : nil } : nil
                    media[i].channels = enc.count > 2 ? Int(enc[2]).flatMap { (1...8).contains($0) ? $0 : nil } : nil
                case "fmtp":
                    let f = arg.split(separator: " ", maxSplits: 1)
                    guard f.count == 2, UInt8(f[0]) == media[i].payloadType else { continue }
                    for pair in f[1].split(separator: ";") {
                        let kv = pair.split(separator: "=", maxSplits: 1)
                        guard kv.count == 2 else { continue }
                        guard media[i].parameters.count < Self.maxParameters else {
                            throw RTSPError("the camera's SDP has more than \(Self.maxParameters) format parameters in a section")
                        }
                        media[i].parameters[String(kv[0]).trimmingSpacesAndTabs.lowercased()] = String(kv[1]).trimmingSpacesAndTabs
                    }
                default: continue
                }
            default: continue
            }
        }
        guard sawVersion || !media.isEmpty else { throw RTSPError("the camera's answer to DESCRIBE is not an SDP (no v= or m= line)") }
    }

    /// The absolute URL to SETUP `media` with: its control as given when absolute, else joined
    /// to `base` (Content-Base, Content-Location, or the DESCRIBE URL), as RFC 2326 §C.1.1 says.
    public static func setupURL(control: String?, base: String) -> String {
        guard let control, !control.isEmpty, control != "*" else { return base }
        if control.lowercased().hasPrefix("rtsp://") || control.lowercased().hasPrefix("rtsps://") { return control }
        return base.hasSuffix("/") ? base + control : base + "/" + control
    }
}
