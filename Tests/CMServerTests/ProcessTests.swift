import AsyncHTTPClient
import Foundation
import Kafka
import Logging
import NIOCore
import PurchaseDomain
import PurchaseWire
import ShopTestSupport
import Testing

/// The `cm-server` executable itself, started as a child process against the mock cluster.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ProcessTests {
    static func get(_ url: String) async -> Int? {
        let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(3))
        return response.map { Int($0.status.code) }
    }

    /// `kafka_producer_queue_messages` of a running cm-server: purchases handed to the producer
    /// and not yet acknowledged.
    static func queuedPurchases(_ base: String) async -> Int {
        guard
            let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "\(base)/metrics"), timeout: .seconds(3)),
            let body = try? await response.body.collect(upTo: 1 << 20)
        else { return -1 }
        let line = String(buffer: body).split(separator: "\n").first { $0.hasPrefix("kafka_producer_queue_messages ") }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int($0) } ?? -1
    }

    @Test func aBadSettingStopsItWithOneLineNamingTheVariable() async throws {
        let child = try ChildProcess("cm-server", environment: ["KAFKA_BROKERS": "localhost:9092", "PORT": "70000"])
        #expect(await child.waitForExit(timeout: .seconds(10)))
        #expect(child.process.terminationStatus == 78)
        let output = child.output
        #expect(output.split(separator: "\n").count == 1)
        #expect(output.contains("PORT"))
    }

    /// SIGTERM while purchases wait for a slow broker: every request in flight is answered 200,
    /// each of them is on the topic, and the process exits 0 within the bound.
    @Test func sigtermFinishesTheRequestsInFlightFlushesAndExitsZero() async throws {
        let cluster = try KafkaMockCluster()
        let topic = "sigterm-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic(topic, partitions: 2)
        let port = try freeLoopbackPort()
        let child = try ChildProcess(
            "cm-server",
            environment: [
                "KAFKA_BROKERS": cluster.bootstrapServers, "KAFKA_TOPIC": topic, "PORT": "\(port)",
                "LOG_LEVEL": "info", "KAFKA_DELIVERY_TIMEOUT_MS": "8000", "SHUTDOWN_TIMEOUT_MS": "15000",
            ])
        defer { if child.process.isRunning { child.process.terminate() } }
        let base = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while child.process.isRunning, await Self.get("\(base)/readyz") != 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        try #require(
            await Self.get("\(base)/readyz") == 200, "\(child.output)")

        // Each acknowledgement now takes 2 s, so the purchases below are in flight at SIGTERM.
        try cluster.setRoundTripTime(of: 1, to: .seconds(2))
        // One connection per purchase, so that all 20 are at the server (not queued in a pool).
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 20)
        let purchases = Task {
            try await HTTPClient.withHTTPClient(configuration: clientConfiguration) { http in
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for i in 0..<20 {
                        group.addTask {
                            var request = HTTPClientRequest(url: "\(base)/buy")
                            request.method = .POST
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.body = .bytes(
                                ByteBuffer(string: #"{"username":"u\#(i)","userid":"\#(i)","price":"1.00"}"#))
                            let response = try await http.execute(request, timeout: .seconds(30))
                            let body = try await response.body.collect(upTo: 1 << 16)
                            guard response.status == .ok else { return nil }
                            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
                            return object?["purchaseId"] as? String
                        }
                    }
                    return try await group.reduce(into: [String?]()) { $0.append($1) }
                }
            }
        }
        // SIGTERM once all 20 are in flight: handed to the producer, their acks still on the way.
        let allInFlight = try await waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
            await Self.queuedPurchases(base) >= 20
        }
        #expect(allInFlight, "the 20 purchases reached the producer before SIGTERM")
        child.signal(SIGTERM)
        let signalled = ContinuousClock.now
        let answers = try await purchases.value
        #expect(await child.waitForExit(timeout: .seconds(20)))
        // The bound is SHUTDOWN_TIMEOUT_MS (15 s) from the signal, plus a second for the process.
        #expect(ContinuousClock.now - signalled < .seconds(16))
        #expect(child.process.terminationStatus == 0, "\(child.output)")
        #expect(answers.count == 20 && answers.allSatisfy { $0 != nil }, "every request in flight got its 200")

        try cluster.setRoundTripTime(of: 1, to: .zero)
        let messages = try await readTopic(
            topic, bootstrapServers: cluster.bootstrapServers, expecting: 20, timeout: .seconds(30), settle: .zero)
        let stored = Set(
            try messages.map { try PurchaseEvent(kafkaValue: $0.value).purchaseId.uuidString.lowercased() })
        #expect(stored == Set(answers.compactMap { $0 }))
    }
}
