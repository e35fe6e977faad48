// swift-tools-version:6.2
import PackageDescription

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    // No warnings in this package; dependencies are not affected.
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "scalable-shop",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cm-server", targets: ["CMServer"]),
        .executable(name: "cm-api", targets: ["CMAPI"]),
        .executable(name: "mongo-bench", targets: ["MongoBench"]),
        .executable(name: "kafka-mock", targets: ["KafkaMockServer"]),
        .library(name: "Events", targets: ["Events"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "Mongo", targets: ["Mongo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
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
            swiftSettings: settings
        ),
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                "Events",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        .target(
            name: "Mongo",
            dependencies: [
                "CMongoC",
                "Events",
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .target(
            name: "ShopHTTP",
            dependencies: [
                "Events",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "CMServer",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "Events",
                "Kafka",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "ShopHTTP",
            ],
            resources: [
                .embedInCode("openapi.yaml"), .embedInCode("shop.html"), .embedInCode("shop.js"),
                .embedInCode("shop.css"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "CMAPI",
            dependencies: [
                "Events",
                "Kafka",
                "Mongo",
                "ShopHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("openapi.yaml")],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "KafkaMockServer",
            dependencies: [
                "Events",
                "Kafka",
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(name: "MongoBench", dependencies: ["Events", "Mongo"], swiftSettings: settings),
        .testTarget(name: "EventsTests", dependencies: ["Events"], swiftSettings: settings),
        .testTarget(
            name: "KafkaTests",
            dependencies: [
                "Kafka",
                "Events",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        // What several test targets need: a SecantusDB server to start, stop and restart.
        .target(
            name: "ShopTestSupport",
            dependencies: [
                "Kafka",
                "Mongo",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Tests/ShopTestSupport",
            swiftSettings: settings
        ),
        .testTarget(name: "MongoTests", dependencies: ["Mongo", "Events", "ShopTestSupport"], swiftSettings: settings),
        .testTarget(
            name: "CMServerTests",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "CMServer",
                "Events",
                "Kafka",
                "ShopTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: settings
        ),
        // The executables as processes, checked through HTTP only (kafka-mock, cm-api, cm-server).
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "ShopTestSupport",
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "CMAPITests",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "CMAPI",
                "Events",
                "Kafka",
                "Mongo",
                "ShopTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: settings
        ),
    ],
    swiftLanguageModes: [.v6]
)
