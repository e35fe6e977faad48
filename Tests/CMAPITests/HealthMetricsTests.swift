import Foundation
import Hummingbird
import HummingbirdTesting
@_spi(Testing) import Kafka
import PurchaseDomain
import PurchaseWire
import Synchronization
import Testing

@testable import CMAPI

/// What the alerts read: freshness per partition and the service's health as gauges.
@Suite struct HealthMetricsTests {
    static func message(partition: Int32, offset: Int64, at milliseconds: Int64) -> KafkaConsumerMessage {
        KafkaConsumerMessage(
            forTesting: "t", partition: partition, offset: offset, key: nil, value: [], headers: [],
            timestampMilliseconds: milliseconds)
    }

    @Test func freshnessIsTheAgeOfTheOldestEventNotYetStored() {
        let status = IngestStatus()
        let now = Timestamp(millisecondsSinceEpoch: 1_790_000_100_000)
        let p0 = KafkaTopicPartition(topic: "t", partition: 0)
        let p1 = KafkaTopicPartition(topic: "t", partition: 1)
        #expect(status.oldestUnstoredAge(p0, lag: 0, now: now) == 0)
        // Read and held (MongoDB failing, say): the oldest held event's age, however many are held.
        status.read([
            Self.message(partition: 0, offset: 0, at: 1_790_000_040_000),
            Self.message(partition: 0, offset: 1, at: 1_790_000_070_000),
            Self.message(partition: 1, offset: 0, at: 1_790_000_090_000),
        ])
        status.read([Self.message(partition: 0, offset: 2, at: 1_790_000_095_000)])
        #expect(status.oldestUnstoredAge(p0, lag: 0, now: now) == 60)
        #expect(status.oldestUnstoredAge(p1, lag: 3, now: now) == 10)
        // Settled: nothing behind is fresh; events behind but not read yet are younger than the
        // newest settled one.
        status.settled([Self.message(partition: 0, offset: 2, at: 1_790_000_095_000)])
        #expect(status.oldestUnstoredAge(p0, lag: 0, now: now) == 0)
        #expect(status.oldestUnstoredAge(p0, lag: 12, now: now) == 5)
        #expect(status.oldestUnstoredAge(p1, lag: 3, now: now) == 10)
        #expect(status.processed == 1)
    }

    @Test func theMetricsSayWhetherTheServiceIsReadyOrBroken() async throws {
        let store = InMemoryPurchaseStore()
        let status = IngestStatus()
        status.setRunning(true)
        let broken = Mutex<String?>(nil)
        let app = Application(
            router: buildRouter(
                store: store, status: status, failure: { broken.withLock { $0 } },
                lag: { [KafkaTopicPartition(topic: "t", partition: 3): 4] }))
        try await app.test(.router) { client in
            func metrics() async throws -> String {
                try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            }
            var text = try await metrics()
            #expect(text.contains(#"service_ready{shop_service="cm-api"} 1"#))
            #expect(text.contains(#"service_broken{shop_service="cm-api"} 0"#))
            #expect(text.contains(#"cmapi_oldest_unstored_event_age_seconds{topic="t",partition="3"} 0"#), "\(text)")
            store.setUnavailable("no primary")
            text = try await metrics()
            #expect(text.contains(#"service_ready{shop_service="cm-api"} 0"#))
            store.setUnavailable(nil)
            broken.withLock { $0 = "Kafka consumer: fenced" }
            text = try await metrics()
            #expect(text.contains(#"service_ready{shop_service="cm-api"} 0"#))
            #expect(text.contains(#"service_broken{shop_service="cm-api"} 1"#))
        }
    }
}
