import AsyncHTTPClient
import Hummingbird
import Kafka
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import ShopHTTP

/// The HTTP routes of cm-server.
func buildRouter(publisher: some PurchasePublisher, purchaseLists: PurchaseListClient) -> Router<BasicRequestContext> {
    let registry = ShopMetrics.bootstrap()
    let router = Router()
    router.add(middleware: MetricsMiddleware())
    BuyController(publisher: publisher).addRoutes(to: router)
    PurchaseListController(client: purchaseLists).addRoutes(to: router)
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

/// cm-server: the router, the Kafka producer as a service that starts before and stops after
/// the HTTP server (so graceful shutdown flushes what the last requests produced). `http` is the
/// process's one HTTP client, for cm-api.
func buildApplication(
    configuration: CMServerConfiguration,
    http: HTTPClient,
    logger: Logger
) throws -> some ApplicationProtocol {
    var producerConfiguration = KafkaProducerConfiguration(kafka: configuration.kafka)
    producerConfiguration.deliveryTimeout = configuration.deliveryTimeout
    producerConfiguration.linger = configuration.linger
    let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
    let publisher = KafkaPurchasePublisher(producer: producer, topic: configuration.topic)
    return Application(
        router: buildRouter(
            publisher: publisher,
            purchaseLists: PurchaseListClient(
                http: http, host: configuration.cmAPIHost, timeout: configuration.cmAPITimeout)
        ),
        server: ShopHTTPServer.http1(idleTimeout: configuration.idleTimeout),
        configuration: .init(address: .hostname("0.0.0.0", port: configuration.port), serverName: "cm-server"),
        services: [producer],
        logger: logger
    )
}
