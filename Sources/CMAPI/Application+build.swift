import Events
import Foundation
import Hummingbird
import Kafka
import Logging
import Metrics
import Mongo
import NIOCore
import ServiceLifecycle
import ShopHTTP

/// Asks MongoDB whether it answers, one ping at a time: a readiness probe every few seconds
/// must not pile up pings (each holds a pool thread until the server selection timeout).
actor MongoPing {
    let client: MongoClient
    /// How long readiness waits for the answer: under the probe's timeout (3 s in the chart).
    let wait: Duration
    private var inFlight: Task<String?, Never>?

    init(client: MongoClient, wait: Duration = .seconds(2)) {
        self.client = client
        self.wait = wait
    }

    /// `nil` when MongoDB answered a ping within `wait`, else why not.
    func failure() async -> String? {
        let task: Task<String?, Never>
        if let inFlight {
            task = inFlight
        } else {
            task = Task { [client] in
                do {
                    try await client.ping()
                    return nil
                } catch {
                    return (error as? MongoError)?.message ?? "\(error)"
                }
            }
            inFlight = task
            Task {
                _ = await task.value
                self.finished(task)
            }
        }
        let wait = self.wait
        return await withTaskGroup(of: String?.self) { group in
            group.addTask { await task.value }
            group.addTask {
                try? await Task.sleep(for: wait)
                return "no answer to a ping within \(wait)"
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    private func finished(_ task: Task<String?, Never>) {
        if inFlight == task { inFlight = nil }
    }
}

/// cm-api's routes: the purchase lists, health, readiness and metrics.
/// `lag` gives the consumer's lag per partition, exported at scrape time.
func buildRouter(
    collection: MongoCollection,
    status: IngestStatus,
    ping: MongoPing,
    lag: @escaping @Sendable () async -> [KafkaTopicPartition: Int64] = { [:] }
) -> Router<BasicRequestContext> {
    let registry = ShopMetrics.bootstrap()
    let router = Router()
    router.add(middleware: MetricsMiddleware())
    PurchaseListRoutes(collection: collection).addRoutes(to: router)
    ServiceRoutes.add(to: router, openAPIDocument: PackageResources.openapi_yaml) {
        if let reason = status.unavailableReason { return reason }
        return await ping.failure().map { "MongoDB unreachable: \($0)" }
    }
    let newestAge = Gauge(label: "cmapi_newest_stored_event_age_seconds")
    ShopMetrics.addRoute(to: router, registry: registry) {
        for (partition, behind) in await lag() {
            Gauge(
                label: "cmapi_consumer_lag_messages",
                dimensions: [("topic", partition.topic), ("partition", String(partition.partition))]
            ).record(behind)
        }
        if let newest = status.newestReceivedAt {
            let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
            newestAge.record(Double(now - newest.millisecondsSinceEpoch) / 1000)
        }
    }
    router.add(middleware: UnroutedRequestMiddleware(routes: router.routes))
    return router
}
