#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What box and server share about tus 1.0.0 (https://tus.io/protocols/resumable-upload):
/// header names, the status codes Junction acts on, and `Upload-Metadata` encoding.
public enum Tus {
    public static let version = "1.0.0"

    public enum Header {
        public static let resumable = "Tus-Resumable"
        public static let version = "Tus-Version"
        public static let `extension` = "Tus-Extension"
        public static let maxSize = "Tus-Max-Size"
        public static let checksumAlgorithm = "Tus-Checksum-Algorithm"
        public static let uploadOffset = "Upload-Offset"
        public static let uploadLength = "Upload-Length"
        public static let uploadMetadata = "Upload-Metadata"
        public static let uploadChecksum = "Upload-Checksum"
        public static let uploadExpires = "Upload-Expires"
        public static let location = "Location"
        public static let contentType = "Content-Type"
        /// PATCH bodies are this content type.
        public static let offsetOctetStream = "application/offset+octet-stream"
    }

    /// The checksum extension's status for a chunk whose checksum does not match.
    public static let checksumMismatch = 460
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs. Keys Junction sends (a contract:
/// add freely, rename none): `device`, `camera`, `start`, `end` (RFC 3339 UTC), `sha256` (hex of
/// the whole file), `filename`, and `reason` or `request` when there is one.
public struct UploadMetadata: Sendable, Equatable {
    public private(set) var pairs: [(key: String, value: String)]

    public init(_ pairs: [(String, String)] = []) {
        self.pairs = pairs.map { (key: $0.0, value: $0.1) }
    }

    public subscript(key: String) -> String? {
        get { pairs.first { $0.key == key }?.value }
        set {
            pairs.removeAll { $0.key == key }
            if let newValue { pairs.append((key, newValue)) }
        }
    }

    public static func == (a: UploadMetadata, b: UploadMetadata) -> Bool {
        a.pairs.map(\.key) == b.pairs.map(\.key) && a.pairs.map(\.value) == b.pairs.map(\.value)
    }

    /// The header value.
    public var encoded: String {
        pairs.map { "\($0.key) \(Data($0.value.utf8).base64EncodedString())" }.joined(separator: ",")
    }

    public struct DecodingError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { "Upload-Metadata: \(message)" }
    }

    /// Parses a header value; keys must be non-empty ASCII without spaces or commas, values base64.
    public init(decoding header: String) throws(DecodingError) {
        var pairs: [(String, String)] = []
        for item in header.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.drop(while: { $0 == " " }).split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard let key = parts.first.map(String.init), !key.isEmpty, key.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw DecodingError(message: "an entry has no key")
            }
            if pairs.contains(where: { $0.0 == key }) { throw DecodingError(message: "key '\(key)' appears twice") }
            var value = ""
            if parts.count == 2 {
                guard let data = Data(base64Encoded: String(parts[1])) else {
                    throw DecodingError(message: "the value of '\(key)' is not base64")
                }
                guard let text = String(data: data, encoding: .utf8) else {
                    throw DecodingError(message: "the value of '\(key)' is not UTF-8 text")
                }
                value = text
            }
            pairs.append((key, value))
        }
        self.init(pairs)
    }
}
