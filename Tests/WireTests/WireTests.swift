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
