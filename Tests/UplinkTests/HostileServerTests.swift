import Foundation
import Synchronization
import Testing
import Wire
@testable import Uplink

/// A server that answers creation with a Location of its choosing, and records every request.
final class LocationServer: TusTransport, @unchecked Sendable {
    let location: String
    let seen = Mutex<[TusRequest]>([])
    init(location: String) { self.location = location }

    func perform(_ request: TusRequest) async throws -> TusResponse {
        seen.withLock { $0.append(request) }
        if request.method == "POST" { return TusResponse(status: 201, headers: ["Location": location]) }
        return TusResponse(status: 204, headers: ["Upload-Offset": "10"])
    }
}

/// Issue 11, item 1: the token and footage go only to the configured server, over https.
@Suite struct HostileLocationTests {
    func upload(collection: String, location: String) async throws -> (TusClient.Result, [TusRequest]) {
        let server = LocationServer(location: location)
        let client = TusClient(transport: server, collectionURL: collection, token: "tok-secret")
        let result = try await client.upload(length: 10, metadata: UploadMetadata([("device", "b")]), progress: .init(), checksum: nil,
                                             read: { _, n in [UInt8](repeating: 1, count: n) }, save: { _ in }, sleep: { _ in })
        return (result, server.seen.withLock { $0 })
    }

    @Test func aLocationOnAnotherHostOrOverPlainHTTPIsRefusedAndNothingIsSentThere() async throws {
        for location in ["http://commune.test/files/1",          // https downgraded to http
                         "https://evil.test/files/1",            // another host
                         "https://commune.test:8443/files/1",    // another port
                         "ftp://commune.test/files/1",
                         "//evil.test/files/1"] {
            let (result, seen) = try await upload(collection: "https://commune.test/files/", location: location)
            guard case .failed(let reason, _) = result else { Issue.record("\(location): \(result)"); continue }
            #expect(reason.contains("nothing was sent there"), "\(reason)")
            #expect(seen.count == 1 && seen.allSatisfy { $0.url.hasPrefix("https://commune.test/") }, "\(location)")
        }
    }

    @Test func aLocationOnTheSameServerIsFollowed() async throws {
        for location in ["/files/1", "https://commune.test/files/1", "https://COMMUNE.test:443/files/1"] {
            let (result, seen) = try await upload(collection: "https://commune.test/files/", location: location)
            guard case .uploaded = result else { Issue.record("\(location): \(result)"); continue }
            #expect(seen.last?.method == "PATCH" && seen.last?.url.hasPrefix("https://") == true)
        }
        // An http collection (allowed by allow_insecure_http) may stay on http, on its host.
        let (plain, _) = try await upload(collection: "http://127.0.0.1:8080/files/", location: "/files/1")
        guard case .uploaded = plain else { Issue.record("\(plain)"); return }
    }
}
