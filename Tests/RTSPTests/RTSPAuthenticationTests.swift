import Testing
@testable import RTSP

/// Camera sign-in: MD5 against RFC 1321's vectors, Digest against RFC 2617's worked example,
/// Basic, the choice between them, and hostile challenges.
@Suite struct RTSPAuthenticationTests {
    @Test func md5MatchesRFC1321() {
        #expect(MD5.hex([]) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(MD5.hex(Array("message digest".utf8)) == "f96b697d7cb7938d525a2f31aaf161d0")
        #expect(MD5.hex(Array(String(repeating: "1234567890", count: 8).utf8)) == "57edf4a22be3c955ac49da2e2107b67a")
        // 55 and 56 bytes: the two sides of the padding's extra block.
        #expect(MD5.hex([UInt8](repeating: 0x61, count: 55)) == "ef1772b6dff9a122358552954ad0df65")
        #expect(MD5.hex([UInt8](repeating: 0x61, count: 56)) == "3b0c8ac703f828b04c6c197006d17218")
    }

    @Test func digestWithQopIsRFC2617sExample() throws {
        var a = try RTSPAuthentication(challenges: ["Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""],
                                       user: "Mufasa", password: "Circle Of Life")
        let h = a.header(method: "GET", uri: "/dir/index.html", cnonce: "0a4f113b")
        #expect(h.contains("response=\"6629fae49393a05397450978507c4ef1\"") && h.contains("nc=00000001") && h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""))
        #expect(a.header(method: "GET", uri: "/dir/index.html", cnonce: "0a4f113b").contains("nc=00000002"), "the nonce is counted")
    }

    @Test func digestIsChosenOverBasicAndBasicWorksAlone() throws {
        // Hikvision offers both; the RFC 2069 form (no qop) is what most cameras check.
        var d = try RTSPAuthentication(challenges: ["Basic realm=\"IP Camera\"", "Digest realm=\"IP Camera(C1234)\", nonce=\"abc\", stale=\"FALSE\""], user: "admin", password: "12345")
        let ha1 = MD5.hex(Array("admin:IP Camera(C1234):12345".utf8)), ha2 = MD5.hex(Array("DESCRIBE:rtsp://cam/1".utf8))
        #expect(d.header(method: "DESCRIBE", uri: "rtsp://cam/1") == "Digest username=\"admin\", realm=\"IP Camera(C1234)\", nonce=\"abc\", uri=\"rtsp://cam/1\", response=\"\(MD5.hex(Array("\(ha1):abc:\(ha2)".utf8)))\"")
        var b = try RTSPAuthentication(challenges: ["Basic realm=\"x\""], user: "Aladdin", password: "open sesame")
        #expect(b.header(method: "DESCRIBE", uri: "rtsp://cam/1") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    }

    @Test func challengesItCannotAnswerSaySo() {
        for bad in [["Bearer x"], ["Digest realm=\"a\""], ["Digest realm=\"a\", nonce=\"b\", algorithm=SHA-256"], [], ["Digest realm=\"a, nonce=b"],
                    ["Digest " + String(repeating: "a", count: RTSPAuthentication.maxChallengeBytes)],
                    ["Digest " + (0...RTSPAuthentication.maxParameters).map { "p\($0)=1" }.joined(separator: ", ")],
                    ["Digest realm=\"" + String(repeating: "r", count: 513) + "\", nonce=\"n\""]] {
            #expect(throws: RTSPError.self, "\(bad.first?.prefix(40) ?? "none")") { try RTSPAuthentication(challenges: bad, user: "u", password: "p") }
        }
    }
}

/// Requests as written, and the Session and Transport headers as cameras answer them.
@Suite struct RTSPRequestTests {
    @Test func requestsAreWrittenWithCSeqFirstAndNoInjectedLines() {
        let r = RTSPRequest(method: "SETUP", url: "rtsp://cam/1/trackID=1", headers: [("Transport", RTSPTransport.request(track: 0)), ("Session", "abc\r\nX-Evil: 1")])
        #expect(String(decoding: r.bytes(cseq: 3), as: UTF8.self)
                == "SETUP rtsp://cam/1/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: abcX-Evil: 1\r\n\r\n")
    }

    @Test func sessionsAndTheirTimeouts() throws {
        #expect(try RTSPSession(header: "12345678;timeout=60") == RTSPSession(header: "12345678"))
        #expect(try RTSPSession(header: " 5A1B ; timeout = 30").timeoutSeconds == 30)
        #expect(try RTSPSession(header: "x;timeout=0").timeoutSeconds == 1)
        #expect(try RTSPSession(header: "x;timeout=99999999999999999999").timeoutSeconds == 60, "not a number: the default")
        #expect(try RTSPSession(header: "x;timeout=86400").timeoutSeconds == 3600)
        for bad in ["", ";timeout=5", "a b", String(repeating: "s", count: 257)] {
            #expect(throws: RTSPError.self) { try RTSPSession(header: bad) }
        }
    }

    @Test func transportsOverTCPAreTakenAndOthersRefused() throws {
        let t = try RTSPTransport(header: "RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=6B8B4567;mode=\"play\"")
        #expect(t.rtpChannel == 2 && t.rtcpChannel == 3)
        #expect(try RTSPTransport(header: "RTP/AVP/TCP;interleaved=4").rtcpChannel == 5)
        for bad in ["RTP/AVP;unicast;client_port=5000-5001", "RTP/AVP/TCP;unicast", "RTP/AVP/TCP;interleaved=x-1", "RTP/AVP/TCP;interleaved=256-257"] {
            #expect(throws: RTSPError.self, "\(bad)") { try RTSPTransport(header: bad) }
        }
    }
}
