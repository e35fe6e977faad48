import Foundation
@_spi(Testing) import Kafka
import PurchaseDomain
import PurchaseWire
import ShopTestSupport
import Synchronization
import Testing

@testable import CMAPI

/// `cm-api dlq`: dead letters listed, chosen, and brought back once the cause is fixed.
@Suite(.serialized, .timeLimit(.minutes(3))) struct DeadLetterToolTests {
    final class Lines: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        func take() -> [String] {
            lines.withLock { lines in
                defer { lines = [] }
                return lines
            }
        }
    }

    static func letter(
        partition: Int32 = 0, offset: Int64, reason: String, source: String, key: String = "005",
        at milliseconds: Int64 = 1_790_000_000_000, headers: [KafkaHeader] = []
    ) -> DeadLetter {
        DeadLetter(
            record: KafkaConsumerMessage(
                forTesting: DeadLetterTopic.name(of: "shop"), partition: partition, offset: offset,
                key: Array(key.utf8),
                value: Array("{}".utf8),
                headers: headers + [
                    KafkaHeader(name: DeadLetterTopic.Header.reason, value: Array(reason.utf8)),
                    KafkaHeader(name: DeadLetterTopic.Header.source, value: Array(source.utf8)),
                ],
                timestampMilliseconds: milliseconds))
    }

    @Test func everyFilterGivenMustMatch() throws {
        let letters = [
            Self.letter(
                offset: 0, reason: "MongoDB refused the purchase: Document failed validation", source: "shop[1]@7"),
            Self.letter(offset: 1, reason: "not a purchase event: malformed JSON", source: "shop[10]@3", key: "006"),
            Self.letter(
                partition: 2, offset: 5, reason: "MongoDB refused the purchase: too large", source: "shop[1]@9",
                at: 1_790_000_100_000),
        ]
        func chosen(_ selection: DeadLetterSelection) -> [String] { letters.filter(selection.matches).map(\.id) }
        #expect(chosen(DeadLetterSelection()) == ["shop.dlq[0]@0", "shop.dlq[0]@1", "shop.dlq[2]@5"])
        #expect(chosen(DeadLetterSelection(reason: "mongodb REFUSED")) == ["shop.dlq[0]@0", "shop.dlq[2]@5"])
        #expect(chosen(DeadLetterSelection(source: "shop[1]")) == ["shop.dlq[0]@0", "shop.dlq[2]@5"])
        #expect(chosen(DeadLetterSelection(source: "shop[10]@3")) == ["shop.dlq[0]@1"])
        #expect(chosen(DeadLetterSelection(source: "shop")) == ["shop.dlq[0]@0", "shop.dlq[0]@1", "shop.dlq[2]@5"])
        #expect(chosen(DeadLetterSelection(source: "sho")) == [])
        #expect(chosen(DeadLetterSelection(key: "006")) == ["shop.dlq[0]@1"])
        #expect(chosen(DeadLetterSelection(ids: ["2@5", "shop.dlq[0]@0"])) == ["shop.dlq[0]@0", "shop.dlq[2]@5"])
        let between = Date(timeIntervalSince1970: 1_790_000_050)
        #expect(chosen(DeadLetterSelection(since: between)) == ["shop.dlq[2]@5"])
        #expect(chosen(DeadLetterSelection(until: between)) == ["shop.dlq[0]@0", "shop.dlq[0]@1"])
        #expect(chosen(DeadLetterSelection(reason: "refused", source: "shop[1]", since: between)) == ["shop.dlq[2]@5"])
    }

    @Test func theRedrivenRecordKeepsItsOwnHeadersCountsTheRedriveAndNamesTheLetter() {
        let letter = Self.letter(
            offset: 4, reason: "refused", source: "shop[0]@1",
            headers: [
                KafkaHeader(name: "traceparent", value: Array("00-abc".utf8)),
                KafkaHeader(name: DeadLetterTopic.Header.redriveCount, value: Array("2".utf8)),
                KafkaHeader(name: DeadLetterTopic.Header.mongoDBCode, value: Array("121".utf8)),
            ])
        #expect(letter.redrives == 2)
        #expect(
            letter.redriveHeaders == [
                KafkaHeader(name: "traceparent", value: Array("00-abc".utf8)),
                KafkaHeader(name: DeadLetterTopic.Header.redriveCount, value: Array("3".utf8)),
                KafkaHeader(name: DeadLetterTopic.Header.redrivenFrom, value: Array("shop.dlq[0]@4".utf8)),
            ])
    }

    /// A purchase the store refuses is dead-lettered; listed; a dry run sends nothing; once the
    /// cause is fixed the redrive stores it; redriven again it is still stored once; and a letter
    /// that failed again after its redrives is not sent past the maximum.
    @Test func refusedPurchasesAreListedRedrivenOnceFixedAndStoredOnceHoweverOftenRedriven() async throws {
        let harness = try IngestHarness(partitions: 2)
        let store = InMemoryPurchaseStore()
        store.refuse { $0.event.purchase.username == "user 7" ? "Document failed validation" : nil }
        let events = try (0..<12).map { try IngestHarness.event(user: $0 % 4 == 0 ? 7 : 1, number: $0) }
        let refused = Set(
            events.filter { $0.purchase.username == "user 7" }.map { $0.purchaseId.uuidString.lowercased() })
        try await harness.produce(events)
        let ingest = try harness.startIngest(store: store)
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 12 })

        let lines = Lines()
        let tool = DeadLetterTool(
            reader: KafkaTopicReader(
                kafka: KafkaConfiguration(bootstrapServers: [harness.cluster.bootstrapServers]), logger: quietLogger),
            topic: harness.topic, output: lines.append)
        try await tool.list(DeadLetterSelection(), json: true)
        let listed = try lines.take().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(Set(listed.compactMap { $0["purchaseId"] as? String }) == refused)
        #expect(listed.allSatisfy { ($0["reason"] as? String)?.contains("Document failed validation") == true })
        #expect(listed.allSatisfy { $0["mongodbCode"] as? String == "121" && $0["redrives"] as? Int == 0 })
        #expect(listed.allSatisfy { ($0["source"] as? String)?.hasPrefix(harness.topic + "[") == true })

        let selection = DeadLetterSelection(reason: "document failed validation")
        let dry = try await tool.redrive(selection, producer: nil, maximumRedrives: 3)
        #expect(dry == .init(redriven: 3))
        #expect(lines.take().filter { $0.hasPrefix("would redrive") }.count == 3)
        #expect(
            try await waitUntil(timeout: .seconds(3)) { ingest.status.processed > 12 } == false,
            "a dry run sends nothing")

        store.refuse { _ in nil }
        let first = try await tool.redrive(selection, producer: harness.producer, maximumRedrives: 3)
        #expect(first == .init(redriven: 3))
        #expect(try await waitUntil(timeout: .seconds(30)) { store.count == 12 })
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 15 })
        let second = try await tool.redrive(selection, producer: harness.producer, maximumRedrives: 3)
        #expect(second == .init(skippedRedriven: 3), "each letter is sent back once")
        #expect(
            try await waitUntil(timeout: .seconds(3)) { ingest.status.processed > 15 } == false,
            "the second run sends nothing")
        #expect(store.count == 12)
        for id in refused { #expect(try await store.purchase(id: UUID(uuidString: id)!) != nil) }

        // Refused again after a redrive: the letter comes back counting it; the maximum stops it.
        let more = try (100..<102).map { try IngestHarness.event(user: 9, number: $0) }
        store.refuse { $0.event.purchase.username == "user 9" ? "still refused" : nil }
        try await harness.produce(more)
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 17 })
        _ = lines.take()
        #expect(
            try await tool.redrive(
                DeadLetterSelection(reason: "still refused"), producer: harness.producer, maximumRedrives: 1)
                == .init(redriven: 2))
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 19 })
        let again = try await tool.redrive(
            DeadLetterSelection(reason: "still refused"), producer: harness.producer, maximumRedrives: 1)
        #expect(again == .init(skippedAtMaximum: 2, skippedRedriven: 2), "\(lines.take())")
        try await ingest.stop()
    }

    /// The tool, the records the redrives sent to the purchases topic, and the letters on the
    /// dead-letter topic, for a harness whose store refuses `refused` purchases.
    struct RedriveBench {
        let harness: IngestHarness
        let store = InMemoryPurchaseStore()
        let ingest: IngestHarness.Running
        let lines = Lines()
        let tool: DeadLetterTool

        init(partitions: Int = 2, refused: Int) async throws {
            harness = try IngestHarness(partitions: partitions)
            store.refuse { _ in "Document failed validation" }
            try await harness.produce(try (0..<refused).map { try IngestHarness.event(user: $0, number: $0) })
            ingest = try harness.startIngest(store: store)
            tool = DeadLetterTool(
                reader: KafkaTopicReader(
                    kafka: KafkaConfiguration(bootstrapServers: [harness.cluster.bootstrapServers]),
                    logger: quietLogger),
                topic: harness.topic, output: lines.append)
            let ingest = self.ingest
            #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == refused })
        }

        /// How many records the redrives sent back to the purchases topic.
        func redrivenRecords() async throws -> Int {
            try await tool.reader.readAll(harness.topic).filter { record in
                record.headers.contains { $0.name == DeadLetterTopic.Header.redrivenFrom }
            }.count
        }
    }

    /// The reproduction: one letter the store keeps refusing, `redrive --all` four times.
    /// Each run sends each letter once; the copy that comes back is a new letter of the same
    /// lineage, and --max-redrives stops the lineage.
    @Test func redriveRunsOneAfterAnotherSendEachLetterOnce() async throws {
        let bench = try await RedriveBench(refused: 1)
        var sent: [Int] = []
        for run in 1...4 {
            let summary = try await bench.tool.redrive(
                DeadLetterSelection(), producer: bench.harness.producer, maximumRedrives: 3)
            sent.append(summary.redriven)
            let expected = 1 + min(run, 3)
            #expect(
                try await waitUntil(timeout: .seconds(30)) { bench.ingest.status.processed == expected },
                "the redriven copy was refused again and dead-lettered")
        }
        #expect(sent == [1, 1, 1, 0])
        let (letters, ledger) = try await bench.tool.read()
        #expect(letters.map(\.redrives) == [0, 1, 2, 3], "one letter per redrive, not 15")
        #expect(letters.prefix(3).allSatisfy { ledger.state(of: $0.id).isRedriven })
        #expect(ledger.state(of: letters[3].id) == .unhandled)
        #expect(try await bench.redrivenRecords() == 3)
        _ = bench.lines.take()
        try await bench.tool.list(DeadLetterSelection(), unhandled: true, json: false)
        #expect(bench.lines.take().first?.hasPrefix(letters[3].id) == true)
        try await bench.ingest.stop()
    }

    /// Four runs at once over the same 30 letters: every letter is sent back exactly once.
    @Test func concurrentRedriveRunsSendEachLetterOnce() async throws {
        let bench = try await RedriveBench(partitions: 3, refused: 30)
        bench.store.refuse { _ in nil }
        let summaries = try await withThrowingTaskGroup(of: DeadLetterTool.RedriveSummary.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await bench.tool.redrive(
                        DeadLetterSelection(), producer: bench.harness.producer, maximumRedrives: 3)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(summaries.map(\.redriven).reduce(0, +) == 30, "\(summaries)")
        #expect(summaries.allSatisfy { $0.redriven + $0.skippedRedriven + $0.skippedClaimed == 30 })
        #expect(try await bench.redrivenRecords() == 30)
        #expect(try await waitUntil(timeout: .seconds(30)) { bench.store.count == 30 })
        try await bench.ingest.stop()
    }

    /// A run that stopped between its claim and its outcome: the letter is skipped, shown as
    /// claimed, and sent once when the operator says --retry-claimed.
    @Test func aRunStoppedAfterItsClaimLeavesTheLetterClaimedUntilRetried() async throws {
        let bench = try await RedriveBench(refused: 2)
        bench.store.refuse { _ in nil }
        let (letters, _) = try await bench.tool.read()
        try await bench.tool.mark(letters[0], .claim, run: "stopped-run", producer: bench.harness.producer)

        let first = try await bench.tool.redrive(
            DeadLetterSelection(), producer: bench.harness.producer, maximumRedrives: 3)
        #expect(first == .init(redriven: 1, skippedClaimed: 1))
        #expect(
            bench.lines.take().contains { $0.hasPrefix("skipped \(letters[0].id): claimed by redrive run stopped-run") }
        )
        try await bench.tool.list(DeadLetterSelection(), unhandled: true, json: true)
        let unhandled = try bench.lines.take().map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        #expect(unhandled.map { $0["id"] as? String } == [letters[0].id])
        #expect(unhandled.first?["state"] as? String == "claimed")
        #expect(unhandled.first?["claimedBy"] as? String == "stopped-run")

        let retried = try await bench.tool.redrive(
            DeadLetterSelection(), producer: bench.harness.producer, maximumRedrives: 3, retryClaimed: true)
        #expect(retried == .init(redriven: 1, skippedRedriven: 1))
        let after = try await bench.tool.redrive(
            DeadLetterSelection(), producer: bench.harness.producer, maximumRedrives: 3, retryClaimed: true)
        #expect(after == .init(skippedRedriven: 2))
        #expect(try await bench.redrivenRecords() == 2)
        #expect(try await waitUntil(timeout: .seconds(30)) { bench.store.count == 2 })
        try await bench.ingest.stop()
    }

    /// The markers' rules, in offset order: the first claim owns a letter; a later claim, or
    /// another run's outcome, changes nothing.
    @Test func theFirstClaimOwnsALetterAndOnlyItsOutcomeSettlesIt() {
        func marker(_ kind: String, _ run: String, offset: Int64, to: String? = nil) -> KafkaConsumerMessage {
            KafkaConsumerMessage(
                forTesting: DeadLetterTopic.name(of: "shop"), partition: 0, offset: offset, key: nil, value: [],
                headers: [
                    KafkaHeader(name: DeadLetterTopic.Header.marker, value: Array(kind.utf8)),
                    KafkaHeader(name: DeadLetterTopic.Header.letter, value: Array("shop.dlq[0]@0".utf8)),
                    KafkaHeader(name: DeadLetterTopic.Header.run, value: Array(run.utf8)),
                ] + (to.map { [KafkaHeader(name: DeadLetterTopic.Header.redrivenTo, value: Array($0.utf8))] } ?? []),
                timestampMilliseconds: nil)
        }
        var ledger = RedriveLedger()
        let steps: [(KafkaConsumerMessage, String)] = [
            (marker("claim", "a", offset: 1), "claimed"),
            (marker("claim", "b", offset: 2), "claimed"),
            (marker("released", "b", offset: 3), "claimed"),
            (marker("redriven", "b", offset: 4, to: "shop[0]@9"), "claimed"),
            (marker("released", "a", offset: 5), "unhandled"),
            (marker("claim", "b", offset: 6), "claimed"),
            (marker("redriven", "b", offset: 7, to: "shop[0]@9"), "redriven"),
            (marker("claim", "c", offset: 8), "redriven"),
        ]
        for (record, state) in steps {
            let applied = ledger.apply(record)
            #expect(applied)
            #expect(ledger.state(of: "shop.dlq[0]@0").name == state, "after \(record.offset)")
        }
        #expect(ledger.state(of: "shop.dlq[0]@0").claimedBy == nil)
        #expect(ledger.state(of: "shop.dlq[0]@0").redrivenTo == "shop[0]@9")
        let letterApplied = ledger.apply(Self.letter(offset: 0, reason: "r", source: "shop[0]@1").record)
        #expect(!letterApplied)
    }
}
