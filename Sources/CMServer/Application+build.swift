import AsyncHTTPClient
import Hummingbird
import Kafka
import Logging
import Metrics
import NIOCore
import PurchaseDomain
import PurchaseWire
import ServiceLifecycle
import ShopAuth
import ShopHTTP
import ShopKafka
import ShopService

/// The HTTP routes of cm-server.
/// `auth` decides who may call the public routes (`POST /buy`, `GET /getAllUserBuys`); the page,
/// health, readiness, metrics and the OpenAPI document stay open (the ingress publishes only the
/// page and the public routes).
func buildRouter(
    publisher: some PurchasePublisher, purchaseLists: PurchaseListClient, receipts: (any PurchaseReceipts)? = nil,
    auth: RouteAuth = .none, rateLimits: RateLimitSettings = .unlimited, timestampRule: TimestampRule = TimestampRule(),
    idempotencyLookupTimeout: Duration = .seconds(1)
) -> Router<AppRequestContext> {
    let registry = ShopMetrics.bootstrap()
    let router = Router(context: AppRequestContext.self)
    router.addRequestTracing(startsTraces: true)
    router.add(middleware: RequestMetricsMiddleware())
    let publicRoutes = router.group()
    auth.protect(publicRoutes)
    let limiter = RateLimiter(settings: rateLimits)
    BuyRoutes(
        publisher: publisher,
        receipts: receipts ?? CMAPIReceipts(client: purchaseLists, timeout: idempotencyLookupTimeout),
        rateLimiter: limiter, timestampRule: timestampRule
    ).addRoutes(to: publicRoutes)
    PurchaseListRoutes(client: purchaseLists, rateLimiter: limiter).addRoutes(to: publicRoutes)
    ShopPage.addRoutes(to: router)
    ServiceRoutes.add(
        to: router, openAPIDocument: PackageResources.openapi_yaml, failure: { publisher.fatalFailure },
        unavailableReason: { await publisher.unavailableReason() })
    let queueDepth = Gauge(label: "kafka_producer_queue_messages")
    ShopMetrics.addRoute(to: router, registry: registry) {
        queueDepth.record(publisher.queuedMessages)
        await ServiceRoutes.recordHealth(
            service: "cm-server",
            failure: { publisher.fatalFailure }, unavailableReason: { await publisher.unavailableReason() })
    }
    router.add(middleware: UnroutedRequestMiddleware(routes: router.routes))
    return router
}

/// What cm-server does on Kafka, from the names its clients are given in `buildApplication`:
/// the producer sends purchases to `topic`, the topic watch describes it.
func kafkaAccess(topic: String) -> KafkaAccess {
    var access = KafkaAccess()
    access.produce(to: topic)
    access.describe(topic)
    return access
}

/// cm-server: the router, the Kafka producer as a service that starts before and stops after
/// the HTTP server (so graceful shutdown flushes what the last requests produced). `http` is the
/// process's HTTP client for cm-api; `tracedHTTP`, when the process traces, the one for the
/// requests being traced (see ``PurchaseListClient/tracedHTTP``).
func buildApplication(
    configuration: CMServerConfiguration,
    auth: RouteAuth = .none,
    http: HTTPClient,
    tracedHTTP: HTTPClient? = nil,
    logger: Logger
) throws -> some ApplicationProtocol {
    var producerConfiguration = KafkaProducerConfiguration(kafka: configuration.kafka)
    producerConfiguration.deliveryTimeout = configuration.deliveryTimeout
    producerConfiguration.linger = configuration.linger
    let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
    let topicWatch = TopicWatch(topics: [configuration.topic], service: "cm-server", logger: logger) {
        topic throws(KafkaError) in
        try await producer.topicMetadata(topic)
    }
    let publisher = KafkaPurchasePublisher(producer: producer, topic: configuration.topic, topicWatch: topicWatch)
    return ShopHTTPServer.application(
        router: buildRouter(
            publisher: publisher,
            purchaseLists: PurchaseListClient(
                http: http, tracedHTTP: tracedHTTP, host: configuration.cmAPIHost, timeout: configuration.cmAPITimeout,
                serviceToken: auth.serviceToken),
            auth: auth, rateLimits: configuration.rateLimits, timestampRule: configuration.timestampRule,
            idempotencyLookupTimeout: configuration.idempotencyLookupTimeout
        ),
        idleTimeout: configuration.idleTimeout,
        configuration: .init(address: .hostname("0.0.0.0", port: configuration.port), serverName: "cm-server"),
        services: [producer, topicWatch] + auth.services(logger: logger),
        logger: logger
    )
}
