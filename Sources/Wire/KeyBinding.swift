/// The commune's word that a device's Ed25519 key is the one it enrolled (issue 23): the trust
/// anchor a stranger checks a bundle against with only the commune's published key. Made when
/// the commune binds a box's key (its first heartbeat with one, `commune devices add --key`, or
/// a re-enrolment), kept by the commune for every key a device ever had (so a re-keyed box's
/// old bundles stay verifiable), sent to the box in each heartbeat answer, and carried in every
/// bundle as `key-binding.json`. The message signed is `KeyBinding.message`.
public struct KeyBinding: Sendable, Codable, Equatable {
    public var v: Int
    public var device: String
    /// Base64 of the device's 32-byte Ed25519 public key.
    public var deviceKey: String
    /// When the commune bound the key, by the commune's clock.
    public var boundAt: Timestamp
    /// Base64 of the commune's public key, and of its Ed25519 signature over `message`.
    public var communeKey: String
    public var signature: String

    public init(device: String, deviceKey: String, boundAt: Timestamp, communeKey: String, signature: String) {
        self.v = 1
        self.device = device
        self.deviceKey = deviceKey
        self.boundAt = boundAt
        self.communeKey = communeKey
        self.signature = signature
    }

    enum CodingKeys: String, CodingKey { case v, device, signature, deviceKey = "device_key", boundAt = "bound_at", communeKey = "commune_key" }

    /// Every string bounded where it is decoded: a device name, two base64 keys, one signature.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        v = try c.decode(Int.self, forKey: .v)
        device = try c.decode(String.self, forKey: .device, maxCharacters: PlainName.maxLength)
        deviceKey = try c.decode(String.self, forKey: .deviceKey, maxCharacters: 100)
        boundAt = try c.decode(Timestamp.self, forKey: .boundAt)
        communeKey = try c.decode(String.self, forKey: .communeKey, maxCharacters: 100)
        signature = try c.decode(String.self, forKey: .signature, maxCharacters: 200)
    }

    /// `junction-key-binding/1\n{device}\n{device_key}\n{bound_at as Unix ms}\n{commune_key}`.
    public static func message(device: String, deviceKey: String, boundAt: Timestamp, communeKey: String) -> [UInt8] {
        Array("junction-key-binding/1\n\(device)\n\(deviceKey)\n\(boundAt.milliseconds)\n\(communeKey)".utf8)
    }

    public var message: [UInt8] { Self.message(device: device, deviceKey: deviceKey, boundAt: boundAt, communeKey: communeKey) }
}
