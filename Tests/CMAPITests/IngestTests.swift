import Foundation
import Hummingbird
import HummingbirdTesting
import Kafka
import Mongo
import PurchaseDomain
import PurchaseWire
import ShopKafka
import ShopService
import ShopTestSupport
import Testing

@testable import CMAPI

/// cm-api's promise against the mock cluster and SecantusDB: every event stored exactly once.
@Suite(.serialized, .timeLimit(.minutes(3))) struct IngestTests {
    @Test func fiveThousandEventsOfFiftyUsersAreStoredOnceAndListedInOrderEvenWhenProducedTwice() async throws {
        let harness = try IngestHarness()
        let events = try (0..<50).flatMap { user in
            try (0..<100).map { try IngestHarness.event(user: user, number: $0) }
        }
        try await harness.produce(events)
        let ingest = try harness.startIngest()
        #expect(try await harness.waitForCount(5000) == 5000)

        try await harness.produce(events)
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ingest.status.processed < 10_000, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(ingest.status.processed == 10_000)
        #expect(try await harness.collection.count() == 5000, "the second copy of each event stored nothing")
        try await ingest.stop()

        let app = Application(router: buildRouter(store: harness.store, status: ingest.status))
        try await app.test(.router) { client in
            for user in [0, 17, 49] {
                let items = try await allPages(client, path: "/buyList/user%20\(user)", limit: 30)
                let expected = events.filter { $0.purchase.userid == "id-\(user)" }
                    .sorted { $0.purchase.timestamp > $1.purchase.timestamp }
                #expect(items.map(\.purchaseId) == expected.map { $0.purchaseId.uuidString.lowercased() })
                #expect(items.map(\.price) == expected.map(\.purchase.price.description))
                #expect(items.allSatisfy { $0.username == "user \(user)" && $0.id == $0.purchaseId })
            }
        }
    }

    @Test func poisonMessagesGoToTheDeadLetterTopicAndTheValidOnesAroundThemAreStored() async throws {
        let harness = try IngestHarness(partitions: 1)
        let valid = try (0..<6).map { try IngestHarness.event(user: 1, number: $0) }
        let wrongVersion = String(decoding: valid[0].kafkaValue(), as: UTF8.self)
            .replacing(#""schemaVersion":1"#, with: #""schemaVersion":2"#)
        let badPrice = String(decoding: valid[1].kafkaValue(), as: UTF8.self)
            .replacing(#""price":"\#(valid[1].purchase.price)""#, with: #""price":"-1.5""#)
        #expect(badPrice.contains(#""price":"-1.5""#) && wrongVersion.contains(#""schemaVersion":2"#))
        try await harness.produce([valid[2]])
        try await harness.produceRaw(Array("not json at all".utf8))
        try await harness.produce([valid[3]])
        try await harness.produceRaw(Array(wrongVersion.utf8))
        try await harness.produce([valid[4]])
        try await harness.produceRaw(Array(badPrice.utf8))
        try await harness.produce([valid[5]])

        let ingest = try harness.startIngest()
        #expect(try await harness.waitForCount(4) == 4)
        let deadLetters = try await harness.deadLetters(expecting: 3)
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while ingest.status.processed < 7, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await ingest.stop()

        for event in valid[2...5] {
            #expect(try await harness.store.purchase(id: event.purchaseId) != nil)
        }
        #expect(deadLetters.count == 3)
        #expect(
            deadLetters.map(\.value) == [Array("not json at all".utf8), Array(wrongVersion.utf8), Array(badPrice.utf8)])
        let reasons = deadLetters.map { message in
            message.headers.first { $0.name == DeadLetterTopic.Header.reason }.flatMap { $0.value }.map {
                String(decoding: $0, as: UTF8.self)
            }
        }
        #expect(reasons[0]?.contains("not a purchase event") == true)
        #expect(reasons[1]?.contains("schemaVersion") == true)
        #expect(reasons[2]?.contains("price") == true, "\(reasons)")
        #expect(deadLetters.allSatisfy { $0.headers.contains { $0.name == DeadLetterTopic.Header.source } })
        #expect(try await harness.collection.count() == 4)
    }

    @Test func stoppedMidStreamAndRestartedLosesAndDoublesNothing() async throws {
        let harness = try IngestHarness()
        let events = try (0..<30).flatMap { user in
            try (0..<100).map { try IngestHarness.event(user: user, number: $0) }
        }
        try await harness.produce(events)
        let first = try harness.startIngest(batchSize: 100)
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while try await harness.collection.count() < 300, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await first.stop()
        let storedAtStop = try await harness.collection.count()
        #expect(storedAtStop >= 300)

        let second = try harness.startIngest(batchSize: 100)
        #expect(try await harness.waitForCount(3000, timeout: .seconds(90)) == 3000)
        // Everything settled once the group's committed offsets reach the end of every partition.
        let partitions = (0..<4).map { KafkaTopicPartition(topic: harness.topic, partition: Int32($0)) }
        let committedAll = try await waitUntil(timeout: .seconds(30)) {
            let committed = try await second.consumer.committedOffsets(partitions)
            return committed.values.reduce(0) { $0 + ($1 ?? 0) } == 3000
        }
        #expect(committedAll, "the second run committed every offset")
        try await second.stop()
        #expect(try await harness.collection.count() == 3000)
        // What the first run committed is not read again (beyond the batch in hand at stop).
        #expect(second.status.processed <= 3000 - storedAtStop + 4 * 100)
    }

    @Test func mongoDBStoppedAndRestartedTurnsReadinessAndLosesNothing() async throws {
        let server = try SecantusServer()
        let client = try MongoClient(uri: server.uri(serverSelectionTimeoutMS: 1000))
        let collection = client.collection("purchases", database: "outage")
        let harness = try IngestHarness(partitions: 2, collection: collection)
        let ingest = try harness.startIngest(batchSize: 100)
        let app = Application(router: buildRouter(store: harness.store, status: ingest.status))
        let before = try (0..<500).map { try IngestHarness.event(user: $0 % 7, number: $0) }
        let during = try (500..<1000).map { try IngestHarness.event(user: $0 % 7, number: $0) }

        try await app.test(.router) { http in
            try await harness.produce(before)
            #expect(try await harness.waitForCount(500) == 500)
            try await http.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }

            server.stop()
            try await harness.produce(during)
            var status = 0
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            repeat {
                status = Int(try await http.execute(uri: "/readyz", method: .get) { $0.status.code })
            } while status != 503 && ContinuousClock.now < deadline
            #expect(status == 503, "not ready while MongoDB is down")

            try server.start()
            #expect(try await harness.waitForCount(1000, timeout: .seconds(60)) == 1000)
            let readyDeadline = ContinuousClock.now.advanced(by: .seconds(20))
            repeat {
                status = Int(try await http.execute(uri: "/readyz", method: .get) { $0.status.code })
            } while status != 200 && ContinuousClock.now < readyDeadline
            #expect(status == 200, "ready again once MongoDB is back")
        }
        try await ingest.stop()
        #expect(try await collection.count() == 1000)
        await client.shutdown()
    }

    @Test func metricsCountTheIngestAndShowLagPerPartition() async throws {
        let harness = try IngestHarness(partitions: 2)
        let ingest = try harness.startIngest()
        let app = Application(
            router: buildRouter(
                store: harness.store, status: ingest.status, lag: { (try? ingest.consumer.lag()) ?? [:] }))
        try await app.test(.router) { client in
            func scrape() async throws -> String {
                try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            }
            func value(_ text: String, _ prefix: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { $0.split(separator: " ").last }
                    .flatMap { Double($0) }
            }
            let first = try await scrape()
            let before = value(first, "cmapi_purchases_inserted_total ") ?? 0
            let agesBefore = value(first, "cmapi_event_age_at_write_seconds_count ") ?? 0
            try await harness.produce(try (0..<20).map { try IngestHarness.event(user: $0 % 3, number: $0) })
            #expect(try await harness.waitForCount(20) == 20)
            let lagLines = (0..<2).map { #"cmapi_consumer_lag_messages{topic="\#(harness.topic)",partition="\#($0)"}"# }
            var text = ""
            let caughtUp = try await waitUntil(timeout: .seconds(20)) {
                text = try await scrape()
                return lagLines.allSatisfy { value(text, $0) == 0 }
            }
            #expect(caughtUp, "the lag of both partitions reads 0 once everything is consumed")
            // Other suites in this process ingest too; counters only grow.
            #expect((value(text, "cmapi_purchases_inserted_total ") ?? 0) >= before + 20)
            #expect(text.contains("# TYPE cmapi_mongo_write_duration_seconds histogram"))
            #expect(text.contains("# TYPE cmapi_batch_size histogram"))
            #expect(value(text, "cmapi_newest_stored_event_age_seconds ") != nil)
            // Each event's age when its write starts: one observation per event, at least.
            #expect(text.contains("# TYPE cmapi_event_age_at_write_seconds histogram"))
            #expect((value(text, "cmapi_event_age_at_write_seconds_count ") ?? 0) >= agesBefore + 20)
            #expect(text.contains("# TYPE cmapi_event_ingest_delay_seconds histogram"))
        }
        try await ingest.stop()
    }

    /// cm-api's own share of an event's age leaves out the time the ingest spent writing earlier
    /// batches after the event arrived.
    @Test func theTimeSpentWritingIsCountedOnceAndOnlyInside() {
        let writes = RecentWrites()
        writes.add(from: 100, to: 200)
        writes.add(from: 250, to: 400)
        writes.add(from: 400, to: 450)
        #expect(writes.writing(from: 0, to: 1000) == 300)
        #expect(writes.writing(from: 150, to: 300) == 100)
        #expect(writes.writing(from: 420, to: 430) == 10)
        #expect(writes.writing(from: 450, to: 500) == 0)
        #expect(writes.writing(from: 0, to: 90) == 0)
    }

    /// The race cm-server cannot see: one `Idempotency-Key` used for two purchases before the
    /// first was stored. Both events share a purchaseId and a partition (the key is the userid's);
    /// the first stored is kept, the later one is dead-lettered with a reason (never dropped as a
    /// duplicate), and a redelivery of the first is still just a duplicate.
    @Test func aKeyUsedForTwoPurchasesKeepsTheFirstAndDeadLettersTheOther() async throws {
        let harness = try IngestHarness(partitions: 2)
        let id = UUID.purchaseID(userid: "id-7", idempotencyKey: try IdempotencyKey("reused"))
        func keyed(_ hundredths: Int64) throws -> PurchaseEvent {
            let purchase = try Purchase(
                username: "user 7", userid: "id-7", price: Price(hundredths: hundredths),
                timestamp: Timestamp(millisecondsSinceEpoch: 1_717_000_000_000))
            return PurchaseEvent(
                purchaseId: id, purchase: purchase, receivedAt: purchase.timestamp,
                idempotencyFingerprint: PurchaseRequest(purchase: purchase, timestampGiven: true).fingerprint)
        }
        let (first, reuse) = (try keyed(100), try keyed(999))
        try await harness.produce([first])
        try await harness.produce([reuse])
        try await harness.produce([first])
        let ingest = try harness.startIngest()
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 3 })
        let stored = try await harness.store.purchase(id: id)
        #expect(stored?.event == first, "the first request is the one kept")
        let letters = try await harness.deadLetters(expecting: 1)
        #expect(letters.count == 1)
        #expect(letters.first?.value == reuse.kafkaValue())
        let reason = letters.first.flatMap { IngestFailureClassTests.header(DeadLetterTopic.Header.reason, of: $0) }
        #expect(reason?.hasPrefix(DeadLetterTopic.Cause.idempotencyConflict.reasonPrefix) == true, "\(reason ?? "-")")
        #expect(try await harness.collection.count() == 1)
        try await ingest.stop()
    }

    /// A deleted topic is seen: the ingest says it is not ready and why, `kafka_topic_missing`
    /// turns 1 for the alert, and the reads stay ready (MongoDB still serves them).
    @Test func aMissingTopicHoldsTheIngestVisiblyAndLeavesTheReadsReady() async throws {
        let harness = try IngestHarness(partitions: 2)
        let ingest = try harness.startIngest()
        let watch = TopicWatch(
            topics: [harness.topic], service: "cm-api", interval: .milliseconds(200), logger: quietLogger
        ) {
            topic throws(KafkaError) in try await ingest.consumer.topicMetadata(topic)
        }
        let watching = Task { try await watch.run() }
        let app = Application(router: buildRouter(store: harness.store, status: ingest.status, topics: watch))
        try await app.test(.router) { client in
            func ingestAnswer() async throws -> (HTTPResponse.Status, String) {
                try await client.execute(uri: "/readyz/ingest", method: .get) { ($0.status, String(buffer: $0.body)) }
            }
            #expect(try await waitUntil(timeout: .seconds(10)) { try await ingestAnswer().0 == .ok })
            harness.cluster.setTopicMissing(harness.topic)
            #expect(try await waitUntil(timeout: .seconds(10)) { try await ingestAnswer().0 == .serviceUnavailable })
            #expect(try await ingestAnswer().1.contains("the Kafka topic \(harness.topic) does not exist"))
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains(#"kafka_topic_missing{shop_service="cm-api",topic="\#(harness.topic)"} 1"#))
            #expect(metrics.contains("cmapi_ingest_ready 0"))
            harness.cluster.setTopicMissing(harness.topic, false)
            #expect(try await waitUntil(timeout: .seconds(10)) { try await ingestAnswer().0 == .ok })
        }
        watching.cancel()
        try await ingest.stop()
    }

    /// After a rebalance a member exports lag and freshness for the partitions it still owns only:
    /// the series of those it gave up are removed, or the lag alerts would count them twice and a
    /// freshness alert could fire for good on a partition nobody here reads.
    @Test func partitionsGivenUpInARebalanceLeaveTheMetrics() async throws {
        let harness = try IngestHarness(partitions: 4)
        let first = try harness.startIngest()
        let app = Application(
            router: buildRouter(
                store: harness.store, status: first.status, assignment: { try? first.consumer.assignment() },
                lag: { (try? first.consumer.lag()) ?? [:] }))
        try await harness.produce(try (0..<40).map { try IngestHarness.event(user: $0 % 8, number: $0) })
        #expect(try await harness.waitForCount(40) == 40)
        try await app.test(.router) { client in
            let all = try await waitUntil(timeout: .seconds(20)) {
                try await exportedPartitions(client, "cmapi_consumer_lag_messages", topic: harness.topic).count == 4
            }
            #expect(all, "every partition's lag is exported while this member owns them all")
            let second = try harness.startIngest()
            let split = try await waitUntil(timeout: .seconds(60)) {
                let (mine, theirs) = (try first.consumer.assignment(), try second.consumer.assignment())
                return mine.count == 2 && theirs.count == 2
            }
            #expect(split, "the group split the four partitions between the two members")
            let kept = Set(try first.consumer.assignment().map(\.partition))
            for metric in ["cmapi_consumer_lag_messages", "cmapi_oldest_unstored_event_age_seconds"] {
                // The partitions kept report once fetched from again; the ones given up are gone.
                var now: Set<Int32> = []
                let followed = try await waitUntil(timeout: .seconds(20)) {
                    now = try await exportedPartitions(client, metric, topic: harness.topic)
                    return now == kept
                }
                #expect(followed, "\(metric): \(now) exported, \(kept) assigned")
            }
            try await second.stop()
        }
        try await first.stop()
    }
}

/// The partitions of `topic` that `/metrics` has a `metric` series for.
func exportedPartitions(_ client: some TestClientProtocol, _ metric: String, topic: String) async throws -> Set<Int32> {
    let text = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
    let prefix = #"\#(metric){topic="\#(topic)",partition=""#
    return Set(
        text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { line in
            Int32(line.dropFirst(prefix.count).prefix { $0 != "\"" })
        })
}

/// Apart from `IngestTests` so that it runs beside them: it has its own SecantusDB server and
/// mock cluster, and its 40 s, mostly MongoDB's outage and two rebalances, were the longest part
/// of that suite's serial line.
@Suite(.timeLimit(.minutes(3))) struct IngestLongOutageTests {
    /// MongoDB down for long, the group rebalancing twice meanwhile (a member joins, takes half
    /// the partitions, leaves again): the member holding a batch holds that batch and nothing
    /// more (the partitions it gets back are paused as they come), and once MongoDB is back every
    /// event is stored exactly once.
    @Test func aLongOutageHoldsOneBatchWhateverTheGroupDoes() async throws {
        let server = try SecantusServer()
        let client = try MongoClient(uri: server.uri(serverSelectionTimeoutMS: 500))
        let collection = client.collection("purchases", database: "long-outage")
        let harness = try IngestHarness(partitions: 4, collection: collection)
        let batch = 50
        let first = try harness.startIngest(batchSize: batch)
        let events = try (0..<2000).map { try IngestHarness.event(user: $0 % 40, number: $0) }
        try await harness.produce(Array(events[..<100]))
        #expect(try await harness.waitForCount(100) == 100)
        server.stop()
        try await harness.produce(Array(events[100...]))
        #expect(try await waitUntil(timeout: .seconds(30)) { first.status.held > 0 }, "a batch is held")

        let second = try harness.startIngest(batchSize: batch)
        let split = try await waitUntil(timeout: .seconds(60)) {
            let (mine, theirs) = (try first.consumer.assignment(), try second.consumer.assignment())
            return mine.count == 2 && theirs.count == 2
        }
        #expect(split, "the second member took half the partitions")
        try await second.stop()
        #expect(try await waitUntil(timeout: .seconds(60)) { try first.consumer.assignment().count == 4 })
        // The partitions it got back hold 950 events; taken as they came, they would join the
        // batch within a poll or two.
        var most = 0
        _ = try await waitUntil(timeout: .seconds(5), interval: .milliseconds(20)) {
            most = max(most, first.status.held)
            return most > batch
        }
        #expect(most <= batch, "held \(most) messages with batches of \(batch)")
        #expect(first.consumer.isPaused)

        try server.start()
        #expect(try await harness.waitForCount(2000, timeout: .seconds(90)) == 2000)
        try await first.stop()
        #expect(try await collection.count() == 2000)
        await client.shutdown()
    }
}
