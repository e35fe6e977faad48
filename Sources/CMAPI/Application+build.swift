import Events
import Foundation
import Hummingbird
import Kafka
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import ShopAuth
import ShopHTTP

/// cm-api's routes: the purchase lists, health, readiness and metrics.
/// `lag` gives the consumer's lag per partition, exported at scrape time; `failure` says why
/// the process is broken for good (a Kafka client's fatal error), failing its liveness. `auth`
/// guards the purchase routes: cm-server's service credential, then the caller's own token.
func buildRouter(
    store: any PurchaseStore,
    status: IngestStatus,
    auth: RouteAuth = .none,
    failure: @escaping @Sendable () -> String? = { nil },
    lag: @escaping @Sendable () async -> [KafkaTopicPartition: Int64] = { [:] }
) -> Router<ShopRequestContext> {
    let registry = ShopMetrics.bootstrap()
    let router = Router(context: ShopRequestContext.self)
    router.add(middleware: MetricsMiddleware())
    let purchaseRoutes = router.group()
    if let serviceToken = auth.serviceToken {
        purchaseRoutes.add(middleware: ServiceTokenMiddleware<ShopRequestContext>(token: serviceToken))
    }
    auth.protect(purchaseRoutes)
    PurchaseListRoutes(store: store).addRoutes(to: purchaseRoutes)
    let unavailableReason: @Sendable () async -> String? = {
        if let reason = status.unavailableReason { return reason }
        return await store.unavailableReason()
    }
    ServiceRoutes.add(
        to: router, openAPIDocument: PackageResources.openapi_yaml, failure: failure,
        unavailableReason: unavailableReason)
    let newestAge = Gauge(label: "cmapi_newest_stored_event_age_seconds")
    ShopMetrics.addRoute(to: router, registry: registry) {
        for (partition, behind) in await lag() {
            let dimensions = [("topic", partition.topic), ("partition", String(partition.partition))]
            Gauge(label: "cmapi_consumer_lag_messages", dimensions: dimensions).record(behind)
            Gauge(label: "cmapi_oldest_unstored_event_age_seconds", dimensions: dimensions)
                .record(status.oldestUnstoredAge(partition, lag: behind))
        }
        await ServiceRoutes.recordHealth(
            service: "cm-api", failure: failure,
            unavailableReason: {
                // Never waits for MongoDB: a scrape must answer while it hangs.
                if let reason = status.unavailableReason { return reason }
                return await store.latestUnavailableReason()
            })
        if let newest = status.newestReceivedAt {
            newestAge.record(Timestamp.now.seconds(since: newest))
        }
    }
    router.add(middleware: UnroutedRequestMiddleware(routes: router.routes))
    return router
}
