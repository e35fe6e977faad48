import Events
import Kafka

/// Where accepted purchases go. Production publishes to Kafka; tests use an in-memory one.
protocol PurchasePublisher: Sendable {
    /// Publishes the event and returns once it is durably acknowledged.
    func publish(_ event: PurchaseEvent) async throws(KafkaError) -> KafkaDeliveryReport

    /// `nil` when purchases can be published now, else why not (for `GET /readyz`).
    func unavailableReason() async -> String?

    /// Purchases handed over but not yet acknowledged or failed (the producer's queue depth).
    var queuedMessages: Int { get }
}

/// Publishes purchase events to the purchases topic, keyed by userid so that one user's
/// purchases keep their order.
struct KafkaPurchasePublisher: PurchasePublisher {
    let producer: KafkaProducer
    let topic: String

    func publish(_ event: PurchaseEvent) async throws(KafkaError) -> KafkaDeliveryReport {
        try await producer.send(topic: topic, key: event.kafkaKey, value: event.kafkaValue())
    }

    var queuedMessages: Int { producer.outstandingMessages }

    func unavailableReason() async -> String? {
        do {
            let metadata = try await producer.topicMetadata(topic, timeout: .seconds(2))
            return metadata.partitionCount > 0 ? nil : "topic \(topic) has no partitions"
        } catch {
            return "Kafka unreachable: \(error.message)"
        }
    }
}
