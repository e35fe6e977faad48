import Foundation
@_spi(Testing) import Kafka
import Mongo
import PurchaseDomain
import PurchaseWire
import ShopTestSupport
import Testing

@testable import CMAPI

/// The failures no retry fixes: each is settled (stored, or on the dead-letter topic with its
/// reason) or visibly stops the ingest; none holds a partition silently or is committed untraced.
@Suite(.serialized, .timeLimit(.minutes(3))) struct IngestFailureClassTests {
    static func header(_ name: String, of message: KafkaConsumerMessage) -> String? {
        message.headers.first { $0.name == name }.flatMap(\.value).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A collection validator refuses one user's purchases: they go to the dead-letter topic
    /// with MongoDB's code and reason, the others are stored, and every offset is committed.
    @Test func documentsMongoDBRefusesAreDeadLetteredWithItsCodeAndTheRestStoredAndCommitted() async throws {
        let collection = try makeCollection()
        _ = try await collection.client.command(
            [
                "create": .string(collection.name),
                "validator": .document(["username": .document(["$ne": .string("user 7")])]),
            ], database: collection.database)
        let harness = try IngestHarness(partitions: 1, collection: collection)
        let events = try (0..<40).map { try IngestHarness.event(user: $0 % 10 == 3 ? 7 : 1, number: $0) }
        let refused = events.filter { $0.purchase.username == "user 7" }
        try await harness.produce(events)

        let ingest = try harness.startIngest(batchSize: 16)
        #expect(try await harness.waitForCount(36) == 36)
        let deadLetters = try await harness.deadLetters(expecting: 4)
        #expect(deadLetters.map(\.value) == refused.map { $0.kafkaValue() })
        for message in deadLetters {
            #expect(Self.header(DeadLetterTopic.Header.mongoDBCode, of: message) == "121")
            #expect(
                Self.header(DeadLetterTopic.Header.reason, of: message)?.contains("MongoDB refused the purchase")
                    == true)
            #expect(Self.header(DeadLetterTopic.Header.reason, of: message)?.contains("validation") == true)
            #expect(Self.header(DeadLetterTopic.Header.source, of: message)?.hasPrefix("\(harness.topic)[0]@") == true)
        }
        #expect(try await waitUntil(timeout: .seconds(20)) { ingest.status.processed == 40 })
        #expect(
            try await waitUntil(timeout: .seconds(20)) { try await harness.committed(by: ingest.consumer) == [0: 40] })
        #expect(ingest.status.unavailableReason == nil)
        try await ingest.stop()
        #expect(try await collection.count() == 36)
        for event in refused { #expect(try await harness.store.purchase(id: event.purchaseId) == nil) }
    }

    /// An error no retry fixes (here MongoDB's Unauthorized) is not ready with the reason and
    /// holds the batch uncommitted; once the cause is fixed the held batch is stored once.
    @Test func aPermanentErrorIsNotReadyAndCommitsNothingUntilItIsFixed() async throws {
        let server = try SecantusServer()
        let client = try MongoClient(uri: server.uri(), appName: "cm-api-permanent")
        let admin = try MongoClient(uri: server.uri(), appName: "operator")
        let collection = client.collection("purchases", database: "permanent")
        let harness = try IngestHarness(partitions: 1, collection: collection)
        let failPoint = { (mode: BSONValue) in
            _ = try await admin.command(
                [
                    "configureFailPoint": .string("failCommand"), "mode": mode,
                    "data": .document([
                        "failCommands": .array([.string("insert")]), "errorCode": .int32(13),
                        "appName": .string("cm-api-permanent"),
                    ]),
                ], database: "admin")
        }
        try await failPoint(.string("alwaysOn"))
        let events = try (0..<12).map { try IngestHarness.event(user: 2, number: $0) }
        try await harness.produce(events)
        let ingest = try harness.startIngest { $0.permanentRetry = .seconds(1) }

        #expect(
            try await waitUntil(timeout: .seconds(20)) {
                ingest.status.unavailableReason?.contains("retrying will not help until the cause is fixed") == true
            }, "\(ingest.status.unavailableReason ?? "ready")")
        #expect(
            ingest.status.unavailableReason?.contains("code 13") == true, "\(ingest.status.unavailableReason ?? "")")
        #expect(try await collection.count() == 0)
        #expect(try await harness.committed(by: ingest.consumer)[0] == nil, "nothing committed")

        try await failPoint(.string("off"))
        #expect(try await harness.waitForCount(12, timeout: .seconds(20)) == 12)
        #expect(try await waitUntil(timeout: .seconds(20)) { ingest.status.unavailableReason == nil })
        #expect(
            try await waitUntil(timeout: .seconds(20)) { try await harness.committed(by: ingest.consumer) == [0: 12] })
        try await ingest.stop()
        #expect(try await collection.count() == 12)
        await admin.shutdown()
        await client.shutdown()
    }

    /// A record too large for the dead-letter topic once the headers are added still leaves a
    /// bounded trace there (its start, the reason, where it came from), and is then committed.
    @Test func aRecordTheDeadLetterProducerRefusesLeavesABoundedTrace() async throws {
        let harness = try IngestHarness(partitions: 1)
        var configuration = KafkaProducerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [harness.cluster.bootstrapServers]))
        configuration.kafka.additionalProperties["message.max.bytes"] = "3000"
        let deadLetters = try KafkaProducer(configuration: configuration, logger: quietLogger)
        let large = Array(String(repeating: "x", count: 2900).utf8)
        let valid = try IngestHarness.event(user: 4, number: 1)
        try await harness.produceRaw(large, key: "large")
        try await harness.produce([valid])

        let ingest = try harness.startIngest(deadLetters: deadLetters) { $0.traceBytes = 256 }
        #expect(try await harness.waitForCount(1) == 1)
        let traces = try await harness.deadLetters(expecting: 1)
        #expect(traces.count == 1)
        #expect(traces.first?.value == Array(large.prefix(256)))
        #expect(traces.first?.key == Array("large".utf8))
        #expect(
            traces.first.flatMap { Self.header(DeadLetterTopic.Header.trace, of: $0) }?.contains("value 2900 bytes")
                == true)
        #expect(
            traces.first.flatMap { Self.header(DeadLetterTopic.Header.reason, of: $0) }?.contains(
                "not a purchase event") == true)
        #expect(traces.first.flatMap { Self.header(DeadLetterTopic.Header.source, of: $0) } == "\(harness.topic)[0]@0")
        #expect(
            try await waitUntil(timeout: .seconds(20)) { try await harness.committed(by: ingest.consumer) == [0: 2] })
        try await ingest.stop()
    }

    /// A dead-letter producer broken for good: the ingest stops with the reason (and the process
    /// with it) instead of committing the record untraced or retrying it silently for ever.
    @Test func aFatalDeadLetterProducerStopsTheIngestWithoutCommitting() async throws {
        let harness = try IngestHarness(partitions: 1)
        let deadLetters = try KafkaProducer(
            configuration: KafkaProducerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: [harness.cluster.bootstrapServers])),
            logger: quietLogger)
        deadLetters.raiseFatalErrorForTesting()
        try await harness.produceRaw(Array("not json".utf8))

        let ingest = try harness.startIngest(deadLetters: deadLetters)
        let error = await #expect(throws: DeadLetterImpossible.self) { try await ingest.task.value }
        #expect(error?.source == "\(harness.topic)[0]@0")
        #expect(error?.refusal.isFatal == true)
        #expect(error?.description.contains("raised by a test") == true)
        // The record stays uncommitted for the next process, which must not lose it either.
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: [harness.cluster.bootstrapServers]), groupID: harness.group),
            topics: [harness.topic], logger: quietLogger)
        let committed = try await consumer.committedOffsets([KafkaTopicPartition(topic: harness.topic, partition: 0)])
        #expect(committed.values.allSatisfy { $0 == nil })
        await consumer.close()
    }
}
