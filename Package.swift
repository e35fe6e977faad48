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
        .executable(name: "http-floor", targets: ["HTTPFloor"]),
        .executable(name: "kafka-mock", targets: ["KafkaMockServer"]),
        .library(name: "Events", targets: ["Events"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "Mongo", targets: ["Mongo"]),
    ],
    // Exact versions: builds are reproducible without a committed Package.resolved (README,
    // "Moving a dependency"). Packages these depend on resolve to the one copy each machine has.
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", exact: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", exact: "2.5.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", exact: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/jpsim/Yams.git", exact: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", exact: "5.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system.git", exact: "1.8.1"),
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
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        // What both executables share outside HTTP: configuration through swift-configuration,
        // the Kafka connection settings, LOG_LEVEL, start-up and exit codes, the service group.
        .target(
            name: "ShopService",
            dependencies: [
                "Kafka",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: settings
        ),
        .target(
            name: "ShopHTTP",
            dependencies: [
                "Events",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: settings
        ),
        // Who a request is from (docs/SECURITY.md): bearer JWTs through jwt-kit, the principal in
        // hummingbird-auth's request context, cm-api's service credential, rate limits.
        .target(
            name: "ShopAuth",
            dependencies: [
                "Events",
                "ShopHTTP",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "CMServer",
            dependencies: [
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "Events",
                "Kafka",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "ShopAuth",
                "ShopHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
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
                "ShopService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                "Events",
                "Kafka",
                "Mongo",
                "ShopAuth",
                "ShopHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
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
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // Benchmarks live in bench/ with make bench's script and helpers.
        .executableTarget(
            name: "MongoBench", dependencies: ["Mongo"], path: "bench/MongoBench", swiftSettings: settings),
        .executableTarget(
            name: "HTTPFloor",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/HTTPFloor", swiftSettings: settings),
        .testTarget(name: "EventsTests", dependencies: ["Events"], swiftSettings: settings),
        .testTarget(
            name: "ShopAuthTests",
            dependencies: [
                "Events",
                "ShopAuth",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "KafkaTests",
            dependencies: [
                "CRdKafka",
                "Kafka",
                "ShopTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        // What several test targets share: a SecantusDB server to start, stop and restart, child
        // processes, OpenAPI checks, a stand-in cm-api, list paging, waiting for a condition.
        .target(
            name: "ShopTestSupport",
            dependencies: [
                "Events",
                "Kafka",
                "Mongo",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Tests/ShopTestSupport",
            swiftSettings: settings
        ),
        .testTarget(name: "MongoTests", dependencies: ["Mongo", "ShopTestSupport"], swiftSettings: settings),
        .testTarget(
            name: "CMServerTests",
            dependencies: [
                "CRdKafka",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "CMServer",
                "Events",
                "Kafka",
                "ShopAuth",
                "ShopTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "CMAPITests",
            dependencies: [
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "CMAPI",
                "CRdKafka",
                "Events",
                "Kafka",
                "Mongo",
                "ShopAuth",
                "ShopTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: settings
        ),
    ],
    swiftLanguageModes: [.v6]
)
