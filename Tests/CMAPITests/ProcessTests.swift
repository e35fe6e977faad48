import AsyncHTTPClient
import Foundation
import Kafka
import Mongo
import PurchaseDomain
import PurchaseWire
import ShopTestSupport
import Testing

/// The `cm-api` executable itself, against the mock cluster and SecantusDB.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ProcessTests {
    static func get(_ url: String) async -> Int? {
        let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(3))
        return response.map { Int($0.status.code) }
    }

    @Test func aBadSettingStopsItWithOneLineNamingTheVariable() async throws {
        let child = try ChildProcess(
            "cm-api", environment: ["KAFKA_BROKERS": "k:9092", "MONGODB_URI": "postgres://x"])
        #expect(await child.waitForExit(timeout: .seconds(10)))
        #expect(child.process.terminationStatus == 78)
        #expect(child.output == "cm-api: MONGODB_URI must start with mongodb:// or mongodb+srv://\n")
    }

    /// Started, it creates the indexes, stores what is on the topic and is ready; SIGTERM
    /// stops it with status 0; started again, it goes on from the committed offsets.
    @Test func itStoresTheTopicStopsCleanlyOnSigtermAndGoesOnAfterARestart() async throws {
        let harness = try IngestHarness(partitions: 3)
        let port = try freeLoopbackPort()
        let environment = [
            "KAFKA_BROKERS": harness.cluster.bootstrapServers, "KAFKA_TOPIC": harness.topic,
            "KAFKA_GROUPID": harness.group, "MONGODB_URI": try SharedServer.uri(),
            "MONGODB_DB": harness.collection.database, "MONGODB_COLLECTION": harness.collection.name,
            "PORT": "\(port)", "LOG_LEVEL": "notice", "SHUTDOWN_TIMEOUT_MS": "15000",
        ]
        try await harness.produce(try (0..<600).map { try IngestHarness.event(user: $0 % 9, number: $0) })

        let first = try ChildProcess("cm-api", environment: environment)
        defer { if first.process.isRunning { first.process.terminate() } }
        #expect(try await harness.waitForCount(600) == 600, "\(first.output)")
        let indexes = try await harness.collection.listIndexes().compactMap { index -> String? in
            if case .string(let name)? = index["name"] { name } else { nil }
        }
        #expect(Set(indexes).isSuperset(of: ["username_timestamp_id", "userid_timestamp"]))
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while await Self.get("http://127.0.0.1:\(port)/readyz") != 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(await Self.get("http://127.0.0.1:\(port)/readyz") == 200)
        first.signal(SIGTERM)
        let signalled = ContinuousClock.now
        #expect(await first.waitForExit(timeout: .seconds(20)))
        #expect(first.process.terminationStatus == 0, "\(first.output)")
        #expect(ContinuousClock.now - signalled < .seconds(16))

        try await harness.produce(try (600..<900).map { try IngestHarness.event(user: $0 % 9, number: $0) })
        let second = try ChildProcess("cm-api", environment: environment)
        defer { if second.process.isRunning { second.process.terminate() } }
        #expect(try await harness.waitForCount(900, timeout: .seconds(60)) == 900, "\(second.output)")
        second.signal(SIGTERM)
        #expect(await second.waitForExit(timeout: .seconds(20)))
        #expect(second.process.terminationStatus == 0, "\(second.output)")
        #expect(try await harness.collection.count() == 900)
    }
}
