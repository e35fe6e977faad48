import Foundation
import Kafka
import PurchaseDomain
import PurchaseWire
import ShopKafka
import ShopService
import Synchronization

/// Where accepted purchases go. Production publishes to Kafka; tests use an in-memory one.
protocol PurchasePublisher: Sendable {
    /// Publishes the event and returns once it is durably acknowledged.
    func publish(_ event: PurchaseEvent) async throws(KafkaError) -> KafkaDeliveryReport

    /// `nil` when purchases can be published now, else why not (for `GET /readyz`).
    func unavailableReason() async -> String?

    /// Purchases handed over but not yet acknowledged or failed (the producer's queue depth).
    var queuedMessages: Int { get }

    /// Why no purchase can ever be published again by this process, or `nil` (for `GET /healthz`).
    var fatalFailure: String? { get }
}

/// Publishes purchase events to the purchases topic, keyed by userid so that one user's
/// purchases keep their order.
struct KafkaPurchasePublisher: PurchasePublisher {
    let producer: KafkaProducer
    let topic: String
    /// Whether the topic exists: while it does not, a purchase is refused at once (nothing sent)
    /// rather than held for the whole delivery timeout.
    var topicWatch: TopicWatch?

    func publish(_ event: PurchaseEvent) async throws(KafkaError) -> KafkaDeliveryReport {
        if topicWatch?.isMissing(topic) == true { throw .unknownTopic(topic) }
        // Traced, the record carries the PRODUCER span's context: cm-api's batch links to it.
        return try await producer.tracedSend(topic: topic, key: event.kafkaKey, value: event.kafkaValue())
    }

    var queuedMessages: Int { producer.outstandingMessages }

    var fatalFailure: String? { producer.fatalFailure.map { "Kafka producer: \($0.message)" } }

    /// From what the producer already knows, without waiting for a broker (see
    /// ``KafkaProducer/unavailability()``): a readiness probe never outlasts its timeout, and
    /// probes add no broker requests to the thread pool the sends' reachability probe needs.
    func unavailableReason() async -> String? {
        if let unavailable = producer.unavailability() {
            return unavailable.isFatal
                ? "Kafka producer: \(unavailable.message)" : "Kafka unreachable: \(unavailable.message)"
        }
        return topicWatch?.missingReason
    }
}

/// Where a keyed `POST /buy` asks what is already stored under its purchaseId, to answer a retry
/// with what the first answered and to refuse the key reused for another purchase. Production
/// asks cm-api (``CMAPIReceipts``); route tests, the in-memory publisher.
protocol PurchaseReceipts: Sendable {
    /// What is stored under `purchaseId`, `nil` while nothing is.
    /// - Throws: when the answer could not be had (cm-api down or slow).
    func receipt(of purchaseId: UUID, authorization: String?) async throws -> StoredReceipt?
}

/// Receipts from cm-api's `GET /purchases/{purchaseId}`, each asked within `timeout`.
struct CMAPIReceipts: PurchaseReceipts {
    let client: PurchaseListClient
    let timeout: Duration

    func receipt(of purchaseId: UUID, authorization: String?) async throws -> StoredReceipt? {
        try await client.receipt(of: purchaseId, timeout: timeout, authorization: authorization)
    }
}

/// Keeps what would have gone to Kafka in memory (the route tests' publisher); can be told to
/// fail as a broker that did not acknowledge would, and to report a queue depth. As
/// ``PurchaseReceipts`` it answers what it published as stored at once, or, with `storing` false,
/// nothing (the window before cm-api stores a purchase).
final class InMemoryPublisher: PurchasePublisher, PurchaseReceipts {
    private let state = Mutex<(events: [PurchaseEvent], failure: KafkaError?, fatal: String?)>(([], nil, nil))
    /// Whether published purchases count as stored for ``receipt(of:authorization:)``.
    let storing = Atomic<Bool>(true)

    /// What a test says the producer's queue holds.
    let queued = Atomic<Int>(0)

    var events: [PurchaseEvent] { state.withLock { $0.events } }

    /// The publisher is broken for good with `reason` (as a fenced Kafka producer is).
    func failForGood(_ reason: String) {
        state.withLock { $0.fatal = reason }
    }

    var fatalFailure: String? { state.withLock { $0.fatal } }

    /// Every publish fails with `error` until it is set back to `nil`.
    func failNext(with error: KafkaError?) {
        state.withLock { $0.failure = error }
    }

    func publish(_ event: PurchaseEvent) async throws(KafkaError) -> KafkaDeliveryReport {
        let result: Result<KafkaDeliveryReport, KafkaError> = state.withLock { state in
            if let failure = state.failure { return .failure(failure) }
            state.events.append(event)
            return .success(KafkaDeliveryReport(topic: "t", partition: 2, offset: Int64(state.events.count - 1)))
        }
        return try result.get()
    }

    func unavailableReason() async -> String? {
        state.withLock { $0.failure.map { "Kafka unreachable: \($0.message)" } }
    }

    var queuedMessages: Int { queued.load(ordering: .relaxed) }

    func receipt(of purchaseId: UUID, authorization: String?) async throws -> StoredReceipt? {
        guard storing.load(ordering: .relaxed) else { return nil }
        let found = state.withLock { state in
            state.events.enumerated().first { $0.element.purchaseId == purchaseId }
        }
        return found.map { index, event in
            StoredReceipt(
                purchase: event.purchase, fingerprint: event.idempotencyFingerprint, partition: 2, offset: Int64(index))
        }
    }
}
