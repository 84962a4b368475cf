// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Amanat",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "amanat", targets: ["amanat"]),
        .executable(name: "amanat-bench", targets: ["amanat-bench"]),
        .library(name: "AmanatCore", targets: ["AmanatCore"]),
        .library(name: "AmanatStore", targets: ["AmanatStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        // SHA-256 of attachments: BoringSSL's assembly (SHA extensions where the processor has them) is about five
        // times libsodium's portable C (Docs/performance.md B8). Already in the graph through the HTTP client. Its
        // BoringSSL also seals and opens large AEAD messages (AmanatCrypto's `LargeMessages`, 1.7 times libsodium).
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        .systemLibrary(name: "CSQLiteHardening"),
        .target(
            name: "AmanatCrypto", dependencies: ["CSodium", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "AmanatCore", dependencies: ["AmanatCrypto"]),
        .target(
            name: "AmanatStore",
            dependencies: [
                "AmanatCore", "AmanatCrypto", "CSQLiteHardening", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(name: "AmanatBundle", dependencies: ["AmanatStore", "AmanatCore", "AmanatCrypto"]),
        // The relay's wire codec, shared by the relay and its client (Protocol/http-api.md §4).
        .target(name: "AmanatWire", dependencies: ["AmanatCore", "AmanatCrypto"]),
        .target(name: "AmanatSync", dependencies: ["AmanatWire", "AmanatStore", "AmanatCore", "AmanatCrypto"]),
        .target(
            name: "AmanatRelay",
            dependencies: [
                "AmanatWire", "AmanatStore", "AmanatCore", "AmanatCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "AmanatHTTP",
            dependencies: [
                "AmanatWire", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "amanat",
            dependencies: [
                "AmanatBundle", "AmanatWire", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto", "AmanatRelay",
                "AmanatHTTP", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Fuzzing (Docs/reliability.md): the targets, and the driver Scripts/fuzz.sh links with libFuzzer.
        .target(
            name: "AmanatFuzzTargets",
            dependencies: [
                "AmanatBundle", "AmanatWire", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto", "CSodium",
            ]
        ),
        .executableTarget(name: "amanat-fuzz", dependencies: ["AmanatFuzzTargets"]),
        .executableTarget(
            name: "amanat-bench",
            dependencies: [
                "AmanatBundle", "AmanatRelay", "AmanatHTTP", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto",
                "CSodium",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Benchmarks/AmanatBench"
        ),
        .executableTarget(
            name: "amanat-load",
            dependencies: [
                "AmanatTestSupport", "AmanatRelay", "AmanatHTTP", "AmanatSync", "AmanatStore", "AmanatCore",
                "AmanatCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Load"
        ),
        .target(
            name: "AmanatTestSupport",
            dependencies: [
                "AmanatWire", "AmanatBundle", "AmanatRelay", "AmanatHTTP", "AmanatSync", "AmanatStore", "AmanatCore",
                "AmanatCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/AmanatTestSupport"
        ),
        .testTarget(name: "AmanatCryptoTests", dependencies: ["AmanatCrypto", "CSodium"], exclude: ["Vectors"]),
        .testTarget(name: "AmanatFuzzTests", dependencies: ["AmanatFuzzTargets"]),
        .testTarget(name: "AmanatCoreTests", dependencies: ["AmanatCore", "AmanatCrypto"]),
        .testTarget(
            name: "AmanatStoreTests",
            dependencies: [
                "AmanatTestSupport", "AmanatWire", "AmanatHTTP", "AmanatSync", "AmanatStore", "AmanatCore",
                "AmanatCrypto",
            ],
            exclude: ["FirstReleaseVault"]),
        .testTarget(
            name: "AmanatBundleTests",
            dependencies: ["AmanatTestSupport", "AmanatBundle", "AmanatStore", "AmanatCore", "AmanatCrypto"]),
        .testTarget(
            name: "AmanatSyncTests",
            dependencies: [
                "AmanatTestSupport", "AmanatRelay", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        .testTarget(
            name: "AmanatRelayTests",
            dependencies: [
                "AmanatTestSupport", "AmanatWire",
                "AmanatRelay", "AmanatHTTP", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "AmanatHTTPTests",
            dependencies: [
                "AmanatTestSupport", "AmanatWire",
                "AmanatHTTP", "AmanatRelay", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto",
                .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "amanatTests",
            dependencies: [
                "amanat", "AmanatTestSupport", "AmanatWire", "AmanatBundle", "AmanatRelay", "AmanatHTTP", "AmanatSync",
                "AmanatStore",
                "AmanatCore", "AmanatCrypto", .product(name: "GRDB", package: "GRDB.swift"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
