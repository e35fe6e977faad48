import Foundation
import Kafka
import Logging
import Mongo
import PurchaseDomain
import PurchaseWire
import ServiceLifecycle
import ShopTestSupport
import Testing

@testable import CMAPI

let quietLogger: Logger = {
    var logger = Logger(label: "cm-api-tests")
    logger.logLevel = .error
    return logger
}()

/// A mock Kafka cluster with the purchases topic, a MongoDB collection of its own, and cm-api's
/// ingest between them, started and stopped like the real process does.
final class IngestHarness: Sendable {
    let cluster: KafkaMockCluster
    let topic: String
    let collection: MongoCollection
    /// The ingest's store over `collection`.
    let store: MongoPurchaseStore
    let group: String
    let producer: KafkaProducer

    init(partitions: Int = 4, collection: MongoCollection? = nil) throws {
        cluster = try KafkaMockCluster()
        topic = "purchases-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic(topic, partitions: partitions)
        try cluster.createTopic(DeadLetterTopic.name(of: topic), partitions: 1)
        self.collection = try collection ?? makeCollection()
        store = MongoPurchaseStore(collection: self.collection, logger: quietLogger)
        group = "cm-api-\(UUID().uuidString.prefix(8))"
        producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers])),
            logger: quietLogger)
    }

    /// One running ingest: its service group, to stop it gracefully.
    struct Running {
        let serviceGroup: ServiceGroup
        let task: Task<Void, any Error>
        let status: IngestStatus
        let consumer: KafkaConsumer

        func stop() async throws {
            await serviceGroup.triggerGracefulShutdown()
            try await task.value
        }
    }

    /// - Parameters:
    ///   - deadLetters: the dead-letter producer, if not the harness's own.
    ///   - store: the store, if not `store`.
    ///   - configure: changes to the ingest's settings.
    func startIngest(
        batchSize: Int = 500, deadLetters: KafkaProducer? = nil, store: (any PurchaseStore)? = nil,
        configure: (inout PurchaseIngest.Settings) -> Void = { _ in }
    ) throws -> Running {
        var configuration = KafkaConsumerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers]), groupID: group)
        configuration.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: quietLogger)
        let status = IngestStatus()
        var settings = PurchaseIngest.Settings()
        settings.batchSize = batchSize
        settings.retryMaximum = .seconds(1)
        configure(&settings)
        let ingest = PurchaseIngest(
            consumer: consumer, deadLetters: deadLetters ?? producer, topic: topic, store: store ?? self.store,
            settings: settings, status: status, logger: quietLogger)
        let serviceGroup = ServiceGroup(services: [ingest], logger: quietLogger)
        let task = Task { try await serviceGroup.run() }
        return Running(serviceGroup: serviceGroup, task: task, status: status, consumer: consumer)
    }

    static func event(user: Int, number: Int, base: Int64 = 1_717_000_000_000) throws -> PurchaseEvent {
        let purchase = try Purchase(
            username: "user \(user)", userid: "id-\(user)",
            price: Price(hundredths: Int64(user * 1000 + number)),
            timestamp: Timestamp(millisecondsSinceEpoch: base + Int64(number) * 1000))
        return PurchaseEvent(
            purchaseId: .randomPurchaseID(), purchase: purchase,
            receivedAt: Timestamp(millisecondsSinceEpoch: base + Int64(number) * 1000 + 5))
    }

    func produce(_ events: [PurchaseEvent]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: events.count, by: 250) {
                let slice = events[chunk..<min(chunk + 250, events.count)]
                group.addTask {
                    for event in slice {
                        _ = try await self.producer.send(
                            topic: self.topic, key: event.kafkaKey, value: event.kafkaValue())
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func produceRaw(_ value: [UInt8], key: String = "poison") async throws {
        _ = try await producer.send(topic: topic, key: Array(key.utf8), value: value)
    }

    /// Waits until the collection holds `count` documents, or `timeout`.
    func waitForCount(_ count: Int, timeout: Duration = .seconds(60)) async throws -> Int {
        var now = 0
        _ = try await waitUntil(timeout: timeout, interval: .milliseconds(250)) {
            now = try await collection.count()
            return now >= count
        }
        return now
    }

    /// The group's committed offset (the next to read) for each partition assigned to `consumer`.
    func committed(by consumer: KafkaConsumer) async throws -> [Int32: Int64] {
        let committed = try await consumer.committedOffsets(try consumer.assignment())
        return Dictionary(
            uniqueKeysWithValues: committed.compactMap { key, value in value.map { (key.partition, $0) } })
    }

    /// Everything on the dead-letter topic, read by a consumer of its own.
    func deadLetters(expecting count: Int) async throws -> [KafkaConsumerMessage] {
        try await readTopic(
            DeadLetterTopic.name(of: topic), bootstrapServers: cluster.bootstrapServers, expecting: count)
    }
}
