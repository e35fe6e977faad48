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
        .library(name: "PurchaseDomain", targets: ["PurchaseDomain"]),
        .library(name: "PurchaseWire", targets: ["PurchaseWire"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "Mongo", targets: ["Mongo"]),
    ],
    // Exact versions: builds are reproducible without a committed Package.resolved (docs/DEVELOPING.md,
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
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/jpsim/Yams.git", exact: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", exact: "5.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system.git", exact: "1.8.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", exact: "1.7.3"),
        // OTLP over HTTP only: the OTLPGRPC trait would build gRPC as well (docs/OBSERVABILITY.md).
        .package(url: "https://github.com/swift-otel/swift-otel.git", exact: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // The bindings: thin, safe Swift over the C clients, knowing nothing of purchases.
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
        // The purchase itself: its fields, price, time, identity and rules. No I/O, no wire form.
        .target(
            name: "PurchaseDomain",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: settings
        ),
        // The purchase's wire forms both services speak (docs/CONTRACT.md): the POST /buy body, the
        // Kafka event and the dead-letter topic's vocabulary, the purchase list; one JSON reader
        // and writer for them.
        .target(
            name: "PurchaseWire",
            dependencies: [
                "PurchaseDomain",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: settings
        ),
        // What every process shares: configuration through swift-configuration, LOG_LEVEL, start-up
        // and exit codes, the service group, the Prometheus registry.
        .target(
            name: "ShopService",
            dependencies: [
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: settings
        ),
        // The services' Kafka wiring: the connection settings from the environment, the topic watch.
        .target(
            name: "ShopKafka",
            dependencies: [
                "Kafka",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: settings
        ),
        // An HTTP Date header's value, formatted once a second: ShopHTTP's and bench/HTTPFloor's.
        .target(name: "HTTPDateHeader", swiftSettings: settings),
        // The HTTP foundation of both services: the server, JSON answers, /metrics, health and
        // readiness, unrouted requests. Knows neither Kafka nor auth.
        .target(
            name: "ShopHTTP",
            dependencies: [
                "HTTPDateHeader",
                "PurchaseDomain",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: settings
        ),
        // Who a request is from (docs/SECURITY.md), as middleware: bearer JWTs through jwt-kit, the
        // principal for hummingbird-auth's request contexts, cm-api's service credential.
        .target(
            name: "ShopAuth",
            dependencies: [
                "PurchaseDomain",
                "ShopHTTP",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "CMServer",
            dependencies: [
                "Kafka",
                "PurchaseDomain",
                "PurchaseWire",
                "ShopAuth",
                "ShopHTTP",
                "ShopKafka",
                "ShopService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            resources: [
                .embedInCode("openapi.yaml"), .embedInCode("Page/shop.html"), .embedInCode("Page/shop.js"),
                .embedInCode("Page/shop.css"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "CMAPI",
            dependencies: [
                "Kafka",
                "Mongo",
                "PurchaseDomain",
                "PurchaseWire",
                "ShopAuth",
                "ShopHTTP",
                "ShopKafka",
                "ShopService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            resources: [.embedInCode("openapi.yaml")],
            swiftSettings: settings
        ),
        // make run's stand-in broker: librdkafka's mock cluster with the shop's topics.
        .executableTarget(
            name: "KafkaMockServer",
            dependencies: [
                "Kafka",
                "PurchaseWire",
                "ShopKafka",
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
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), "HTTPDateHeader", "PurchaseDomain", "PurchaseWire",
            ],
            path: "bench/HTTPFloor", swiftSettings: settings),
        // Tests: one target per module that has its own tests (docs/DEVELOPING.md, "Tests"); ShopService,
        // ShopKafka and ShopHTTP are tested through the services' targets.
        .testTarget(
            name: "KafkaTests",
            dependencies: [
                "Kafka",
                "ShopTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        .testTarget(name: "MongoTests", dependencies: ["Mongo", "ShopTestSupport"], swiftSettings: settings),
        .testTarget(name: "PurchaseDomainTests", dependencies: ["PurchaseDomain"], swiftSettings: settings),
        .testTarget(
            name: "PurchaseWireTests", dependencies: ["PurchaseDomain", "PurchaseWire"], swiftSettings: settings),
        .testTarget(
            name: "ShopAuthTests",
            dependencies: [
                "PurchaseDomain",
                "ShopAuth",
                "ShopHTTP",
                "ShopService",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "CMServerTests",
            dependencies: [
                "CMServer",
                "Kafka",
                "PurchaseDomain",
                "PurchaseWire",
                "ShopAuth",
                "ShopHTTP",
                "ShopService",
                "ShopTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "CMAPITests",
            dependencies: [
                "CMAPI",
                "Kafka",
                "Mongo",
                "PurchaseDomain",
                "PurchaseWire",
                "ShopAuth",
                "ShopService",
                "ShopTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: settings
        ),
        // What several test targets share: a SecantusDB server to start, stop and restart, child
        // processes, OpenAPI checks, a stand-in cm-api, list paging, waiting for a condition.
        .target(
            name: "ShopTestSupport",
            dependencies: [
                "Kafka",
                "Mongo",
                "PurchaseDomain",
                "PurchaseWire",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Tests/ShopTestSupport",
            swiftSettings: settings
        ),
    ],
    swiftLanguageModes: [.v6]
)
