// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "scalable-shop",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cm-server", targets: ["CMServer"]),
        .executable(name: "cm-api", targets: ["CMAPI"]),
        .library(name: "Events", targets: ["Events"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "Mongo", targets: ["Mongo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .systemLibrary(
            name: "CMongoC",
            pkgConfig: "libmongoc-1.0",
            providers: [.apt(["libmongoc-dev", "libbson-dev"])]
        ),
        .target(
            name: "Events",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Mongo",
            dependencies: ["CMongoC"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "CMServer",
            dependencies: [
                "Events",
                "Kafka",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "CMAPI",
            dependencies: [
                "Events",
                "Kafka",
                "Mongo",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "EventsTests", dependencies: ["Events"], swiftSettings: strict),
        .testTarget(
            name: "KafkaTests",
            dependencies: [
                "Kafka",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "MongoTests", dependencies: ["Mongo"], swiftSettings: strict),
        .testTarget(name: "CMServerTests", dependencies: ["CMServer"], swiftSettings: strict),
        .testTarget(name: "CMAPITests", dependencies: ["CMAPI"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
