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
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        .target(name: "AmanatCrypto", dependencies: ["CSodium"]),
        .target(name: "AmanatCore", dependencies: ["AmanatCrypto"]),
        .target(
            name: "AmanatStore",
            dependencies: ["AmanatCore", "AmanatCrypto", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(name: "AmanatBundle", dependencies: ["AmanatStore", "AmanatCore", "AmanatCrypto"]),
        .target(name: "AmanatSync", dependencies: ["AmanatStore", "AmanatCore"]),
        .executableTarget(
            name: "amanat",
            dependencies: [
                "AmanatBundle", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "amanat-bench",
            dependencies: ["AmanatBundle", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto"],
            path: "Benchmarks/AmanatBench"
        ),
        .testTarget(name: "AmanatCryptoTests", dependencies: ["AmanatCrypto", "CSodium"], exclude: ["Vectors"]),
        .testTarget(name: "AmanatCoreTests", dependencies: ["AmanatCore", "AmanatCrypto"]),
        .testTarget(name: "AmanatStoreTests", dependencies: ["AmanatStore", "AmanatCore", "AmanatCrypto"]),
        .testTarget(name: "AmanatBundleTests", dependencies: ["AmanatBundle", "AmanatStore", "AmanatCore", "AmanatCrypto"]),
        .testTarget(name: "AmanatSyncTests", dependencies: ["AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto"]),
        .testTarget(name: "amanatTests", dependencies: ["amanat", "AmanatSync", "AmanatStore", "AmanatCore", "AmanatCrypto"]),
    ],
    swiftLanguageModes: [.v6]
)
