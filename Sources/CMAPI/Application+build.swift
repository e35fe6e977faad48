import Foundation
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
import Synchronization

/// cm-api's routes: the purchase lists, health, readiness and metrics.
///
/// `GET /readyz` says whether cm-api can serve reads (MongoDB answers), and nothing else: the
/// Service sends reads to every ready pod, and a write problem must not empty the read path.
/// How the ingest is doing is `GET /readyz/ingest`, `cmapi_ingest_ready`, the alerts and the
/// logs. `failure` says why the process is broken for good (a Kafka client's fatal error),
/// failing its liveness. `auth` guards the purchase routes: cm-server's service credential, then
/// the caller's own token. `topics` says whether the topics exist; `assignment` and `lag` give the
/// consumer's partitions and lag, exported at scrape time for the assigned partitions only.
func buildRouter(
    store: any PurchaseStore,
    status: IngestStatus,
    auth: RouteAuth = .none,
    failure: @escaping @Sendable () -> String? = { nil },
    topics: TopicWatch? = nil,
    assignment: @escaping @Sendable () async -> [KafkaTopicPartition]? = { [] },
    lag: @escaping @Sendable () async -> [KafkaTopicPartition: Int64] = { [:] }
) -> Router<AppRequestContext> {
    let registry = ShopMetrics.bootstrap()
    let router = Router(context: AppRequestContext.self)
    router.addRequestTracing(startsTraces: false)
    router.add(middleware: RequestMetricsMiddleware())
    let purchaseRoutes = router.group()
    if let serviceToken = auth.serviceToken {
        purchaseRoutes.add(middleware: ServiceTokenMiddleware<AppRequestContext>(token: serviceToken))
    }
    auth.protect(purchaseRoutes)
    PurchaseListRoutes(store: store).addRoutes(to: purchaseRoutes)
    ServiceRoutes.add(
        to: router, openAPIDocument: PackageResources.openapi_yaml, failure: failure,
        unavailableReason: { await store.unavailableReason() })
    let ingestReason: @Sendable () -> String? = { status.unavailableReason ?? topics?.missingReason }
    router.get("readyz/ingest") { _, _ -> Response in
        if let reason = failure() ?? ingestReason() { return .error(.serviceUnavailable, reason) }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: "Ingesting")))
    }
    let newestAge = Gauge(label: "cmapi_newest_stored_event_age_seconds")
    let ingestReady = Gauge(label: "cmapi_ingest_ready")
    let held = Gauge(label: "cmapi_ingest_held_messages")
    let partitionGauges = PartitionGauges()
    ShopMetrics.addRoute(to: router, registry: registry) {
        if let assigned = await assignment() {
            partitionGauges.retain(Set(assigned))
            status.retain(Set(assigned))
        }
        for (partition, behind) in await lag() {
            partitionGauges.record(
                partition, lag: behind, oldestUnstoredAge: status.oldestUnstoredAge(partition, lag: behind))
        }
        ingestReady.record(failure() == nil && ingestReason() == nil ? 1 : 0)
        held.record(status.held)
        await ServiceRoutes.recordHealth(
            service: "cm-api", failure: failure,
            // Never waits for MongoDB: a scrape must answer while it hangs.
            unavailableReason: { await store.latestUnavailableReason() })
        if let newest = status.newestReceivedAt {
            newestAge.record(Timestamp.now.seconds(since: newest))
        }
    }
    router.add(middleware: UnroutedRequestMiddleware(routes: router.routes))
    return router
}

/// What the cm-api service does on Kafka, from the names its clients are given in
/// `buildApplication`: the ingest consumes `topic` in `group` (KEDA reads the group's lag with
/// the same identity), the dead-letter producer sends to `<topic>.dlq`, the topic watch
/// describes both.
func kafkaAccess(topic: String, group: String) -> KafkaAccess {
    var access = KafkaAccess()
    access.consume(topic, group: group)
    access.produce(to: DeadLetterTopic.name(of: topic))
    for watched in [topic, DeadLetterTopic.name(of: topic)] { access.describe(watched) }
    return access
}

/// cm-api: the router, and the ingest with its dead-letter producer and topic watch as services
/// that start before and stop after the HTTP server (in reverse: the server stops, the ingest
/// finishes its batch, commits and leaves the group, then the dead-letter producer flushes).
/// `store` is the process's MongoDB store, its pools owned by the caller.
func buildApplication(
    configuration: CMAPIConfiguration,
    auth: RouteAuth = .none,
    store: MongoPurchaseStore,
    logger: Logger
) throws -> some ApplicationProtocol {

    let consumer = try KafkaConsumer(
        configuration: configuration.consumer, topics: [configuration.topic], logger: logger)
    let deadLetters = try KafkaProducer(
        configuration: KafkaProducerConfiguration(kafka: configuration.kafka), logger: logger)
    let topicWatch = TopicWatch(
        topics: [configuration.topic, DeadLetterTopic.name(of: configuration.topic)], service: "cm-api",
        logger: logger
    ) { topic throws(KafkaError) in try await consumer.topicMetadata(topic) }
    let status = IngestStatus()
    var settings = PurchaseIngest.Settings()
    settings.batchSize = configuration.batchSize
    settings.batchWait = configuration.batchWait
    let ingest = PurchaseIngest(
        consumer: consumer, deadLetters: deadLetters, topic: configuration.topic, store: store,
        consumerGroup: configuration.groupID, settings: settings, status: status, logger: logger)
    return ShopHTTPServer.application(
        router: buildRouter(
            store: store, status: status, auth: auth,
            failure: {
                consumer.fatalFailure.map { "Kafka consumer: \($0.message)" }
                    ?? deadLetters.fatalFailure.map { "dead-letter producer: \($0.message)" }
            },
            topics: topicWatch, assignment: { try? consumer.assignment() },
            lag: { (try? consumer.lag()) ?? [:] }),
        idleTimeout: configuration.idleTimeout,
        configuration: .init(address: .hostname("0.0.0.0", port: configuration.port), serverName: "cm-api"),
        services: [deadLetters, topicWatch, ingest] + auth.services(logger: logger),
        logger: logger
    )
}

/// The lag and freshness series of the partitions this member owns. A partition given up in a
/// rebalance has its series removed: its new owner reports it, and a stale copy here would count
/// twice in the lag alerts or keep a freshness alert firing for good.
final class PartitionGauges: Sendable {
    private let exported = Mutex<Set<KafkaTopicPartition>>([])

    private static func dimensions(_ partition: KafkaTopicPartition) -> [(String, String)] {
        [("topic", partition.topic), ("partition", String(partition.partition))]
    }

    func record(_ partition: KafkaTopicPartition, lag: Int64, oldestUnstoredAge: Double) {
        exported.withLock { _ = $0.insert(partition) }
        Gauge(label: "cmapi_consumer_lag_messages", dimensions: Self.dimensions(partition)).record(lag)
        Gauge(label: "cmapi_oldest_unstored_event_age_seconds", dimensions: Self.dimensions(partition))
            .record(oldestUnstoredAge)
    }

    /// Removes the series of every partition not in `assigned`.
    func retain(_ assigned: Set<KafkaTopicPartition>) {
        let revoked = exported.withLock { exported in
            let revoked = exported.subtracting(assigned)
            exported.subtract(revoked)
            return revoked
        }
        for partition in revoked {
            Gauge(label: "cmapi_consumer_lag_messages", dimensions: Self.dimensions(partition)).destroy()
            Gauge(label: "cmapi_oldest_unstored_event_age_seconds", dimensions: Self.dimensions(partition)).destroy()
        }
    }
}
