// swift-tools-version:6.1
import PackageDescription

// Junction: the road-junction camera box (`junction`) and, later, the commune server.
// Targets and their one responsibility are listed in README.md ("Where a change goes").
let package = Package(
    name: "Junction",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "junction", targets: ["JunctionCLI"]),
        .executable(name: "commune", targets: ["CommuneCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Without Hummingbird's ConfigurationSupport trait (nothing here uses swift-configuration):
        // with it, Debian's Swift 6.2.3, which cross-builds the image's junction, refuses the arm64
        // build ("product 'Configuration' required by package 'hummingbird' target 'HummingbirdTLS'
        // not found in package 'swift-configuration'": SwiftPM's traits bug, swiftlang/swift-package-manager#8398).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        // Tests only: property-based tests over hostile numbers (issue 22).
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // The only place FFmpeg's headers are seen. Only `Media` imports it.
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat libavcodec libavutil libswscale",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev"])]
        ),
        // The system's libcrypto (OpenSSL 3), seen only by SystemCrypto.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // SHA-256, SHA-1 and Ed25519 over it (issue 25): the box then carries one BoringSSL
        // (swift-nio-ssl's), not a second one from swift-crypto for three algorithms.
        .target(name: "SystemCrypto", dependencies: ["CLibCrypto"]),
        // Linux interfaces Glibc's Swift module lacks (adjtimex).
        .systemLibrary(name: "CJunctionSys"),
        // Safe Swift over FFmpeg: read a camera, write fragmented-MP4 segments.
        .target(
            name: "Media",
            dependencies: [
                "CFFmpeg", "Evidence", "Activity", "RTSP",
            ]
        ),
        // What box and server share: tus headers, Upload-Metadata, timestamps. Pure values.
        .target(name: "Wire"),
        // Junction's own RTSP client (issue 25), its pure half so far: RTSP answers and
        // interleaved frames from a TCP byte stream, RTP, SDP, H.264 access units. No I/O; not
        // yet what the recorder reads through (that is still libavformat, in Media).
        .target(name: "RTSP"),
        // Finding the moment over a thin link (issue 14): movement from keyframe to keyframe on
        // small grey pictures, per cell of a grid, and each segment's compact activity summary.
        // Pure Swift: the decode is Media's.
        .target(name: "Activity", dependencies: ["Wire"]),
        // Evidence that holds up: the device key, the sealed hash chain of segments and gaps,
        // the seal box inside each segment file, and the offline verifier. Box and commune both.
        .target(
            name: "Evidence",
            dependencies: [
                "Wire",
                "SystemCrypto",
            ],
            exclude: ["BUNDLE-FORMAT.md"]
        ),
        // Fleet updates (issue 24): the signed bundle (blocks compressed alone, fetched by
        // range), the slot writer, systemd-boot's counted entries, and the update's state.
        .target(
            name: "Update",
            dependencies: [
                "Wire", "Config", "CJunctionSys",
                "SystemCrypto",
            ]
        ),
        // Upload queue and tus client (state machine + driver).
        .target(
            name: "Uplink",
            dependencies: [
                "Update",
                "Wire", "Ring", "Evidence", "Activity",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "SystemCrypto",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The daemon's local control socket: the CLI's writes go through the running recorder.
        .target(
            name: "Control",
            dependencies: [
                "Ring", "Wire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The box's configuration file (junction.toml): parsing and validation.
        .target(name: "Config", dependencies: ["Wire", "Activity"]),
        // The on-disk ring: segment files + SQLite index, retention, recovery.
        .target(
            name: "Ring",
            dependencies: [
                "Wire", "Evidence", "Activity",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "SystemCrypto",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The capture service: camera -> segments -> ring, reconnects, gaps, health.
        .target(
            name: "Recorder",
            dependencies: [
                "Media", "Ring", "Config", "Activity", "CJunctionSys",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "JunctionCLI",
            dependencies: [
                "Update",
                "Recorder", "Ring", "Config", "Uplink", "Control", "Evidence", "Activity", "CJunctionSys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The commune server library: tus endpoint, storage, catalog, device registry.
        .target(
            name: "Commune",
            dependencies: [
                "Wire", "Evidence", "Config",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                "SystemCrypto",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The police desk: the web page officers use (sign-in, boxes, requests, playback,
        // evidence, audit), served by `commune serve`. HTML made in Swift, Vietnamese first.
        .target(
            name: "Desk",
            dependencies: [
                "Commune", "Wire", "Media", "Evidence",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "CommuneCLI",
            dependencies: [
                "Commune", "Desk", "Wire", "Config", "Evidence", "Update",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Tests only: generators of the values an attacker sends (Int64's ends, ±1e300, NaN,
        // subnormals, 2^53±1), as numbers and as the JSON texts that carry them (issue 22).
        .target(name: "Hostile", dependencies: [.product(name: "PropertyBased", package: "swift-property-based")], path: "Tests/Hostile"),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Wire", "Hostile", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "JunctionCLITests", dependencies: ["JunctionCLI", "Ring", "Recorder", "Uplink", "Media", "Update"]),
        .testTarget(name: "RingTests", dependencies: ["Ring", "Evidence", "Hostile", "SystemCrypto",
                                                    .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Hostile", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "ActivityTests", dependencies: ["Activity"]),
        .testTarget(name: "RTSPTests", dependencies: ["RTSP"]),
        // SystemCrypto against swift-crypto (BoringSSL) on the same inputs, and RFC 8032's vectors.
        .testTarget(name: "SystemCryptoTests", dependencies: ["SystemCrypto", "Hostile", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "UpdateTests", dependencies: ["Update", "Config", "Wire", "Hostile", "SystemCrypto",
                                                      .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "EvidenceTests", dependencies: ["Evidence", "Wire", "Hostile", "SystemCrypto",
                                                        .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "UplinkTests", dependencies: ["Uplink", "Wire", "Ring", "Hostile", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "CommuneTests", dependencies: [
            "Commune", "Uplink", "Update", "Ring", "Wire", "Evidence", "Hostile", .product(name: "PropertyBased", package: "swift-property-based"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "SQLiteNIO", package: "sqlite-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "RecorderTests", dependencies: ["Recorder", "Ring", "Media"]),
        .testTarget(name: "DeskTests", dependencies: [
            "Desk", "Commune", "Wire", "Evidence", "Hostile", .product(name: "PropertyBased", package: "swift-property-based"),
            "SystemCrypto",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Bounded mutation fuzzing of every parser at a trust boundary (`make fuzz` runs it longer).
        .testTarget(name: "FuzzTests", dependencies: ["Config", "Wire", "RTSP", "Ring", "Control", "Uplink", "Evidence", "Desk", "Commune", "Hostile", "Update",
                                                     "SystemCrypto"],
                    exclude: ["Corpus"]),
        // Needs FFmpeg's command-line tools and GStreamer's RTSP server (installed by `make deps`).
        .testTarget(name: "MediaIntegrationTests", dependencies: ["Media", "Ring", "Recorder", "Config", "Activity", "Evidence", "RTSP",
                                                               .product(name: "Logging", package: "swift-log")]),
    ]
)
