/// A chain record as it travels and is kept (issue 13): its exact JSON body and the box's
/// Ed25519 signature (base64) over it. `Evidence` reads, seals and checks it; here it is only
/// the shape shared by the seal box, the bundle's `chain.jsonl` and the heartbeat.
public struct SealedRecord: Codable, Sendable, Equatable {
    public var body: String
    /// Base64 of the 64-byte Ed25519 signature.
    public var signature: String

    public init(body: String, signature: String) {
        self.body = body
        self.signature = signature
    }
}
