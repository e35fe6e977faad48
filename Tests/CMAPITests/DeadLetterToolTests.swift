import Events
import Foundation
import Kafka
import ShopTestSupport
import Synchronization
import Testing

@testable import CMAPI
@testable import Kafka

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
                topic: "shop.dlq", partition: partition, offset: offset, key: Array(key.utf8), value: Array("{}".utf8),
                headers: headers + [
                    KafkaHeader(name: "dlq-reason", value: Array(reason.utf8)),
                    KafkaHeader(name: "dlq-source", value: Array(source.utf8)),
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
                KafkaHeader(name: "dlq-redrive-count", value: Array("2".utf8)),
                KafkaHeader(name: "dlq-mongodb-code", value: Array("121".utf8)),
            ])
        #expect(letter.redrives == 2)
        #expect(
            letter.redriveHeaders == [
                KafkaHeader(name: "traceparent", value: Array("00-abc".utf8)),
                KafkaHeader(name: "dlq-redrive-count", value: Array("3".utf8)),
                KafkaHeader(name: "dlq-redriven-from", value: Array("shop.dlq[0]@4".utf8)),
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
        let second = try await tool.redrive(selection, producer: harness.producer, maximumRedrives: 3)
        #expect(second == .init(redriven: 3))
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 18 })
        #expect(store.count == 12, "redriven twice, stored once")
        for id in refused { #expect(try await store.purchase(id: UUID(uuidString: id)!) != nil) }

        // Refused again after a redrive: the letter comes back counting it; the maximum stops it.
        let more = try (100..<102).map { try IngestHarness.event(user: 9, number: $0) }
        store.refuse { $0.event.purchase.username == "user 9" ? "still refused" : nil }
        try await harness.produce(more)
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 20 })
        _ = lines.take()
        #expect(
            try await tool.redrive(
                DeadLetterSelection(reason: "still refused"), producer: harness.producer, maximumRedrives: 1)
                == .init(redriven: 2))
        #expect(try await waitUntil(timeout: .seconds(30)) { ingest.status.processed == 22 })
        let again = try await tool.redrive(
            DeadLetterSelection(reason: "still refused"), producer: harness.producer, maximumRedrives: 1)
        #expect(again == .init(redriven: 2, skippedAtMaximum: 2), "\(lines.take())")
        try await ingest.stop()
    }
}
