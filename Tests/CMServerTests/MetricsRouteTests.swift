import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@_spi(Testing) import Kafka
import ShopTestSupport
import Testing

@testable import CMServer

/// `GET /metrics`: the process's one Prometheus registry, shared by every router in this test
/// process, so each test looks only at series no other test writes and compares before/after.
@Suite struct MetricsRouteTests {
    /// The value of the one sample named `name` whose line contains every label.
    static func sample(_ text: String, _ name: String, _ labels: [String]) -> Double? {
        let lines = text.split(separator: "\n").filter { line in
            (line.hasPrefix(name + "{") || line.hasPrefix(name + " ")) && labels.allSatisfy { line.contains($0) }
        }
        guard lines.count == 1, let value = lines[0].split(separator: " ").last else { return nil }
        return Double(value)
    }

    static func scrape(_ client: some TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/metrics", method: .get) { response in
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            return String(buffer: response.body)
        }
    }

    @Test func requestsAreCountedAndTimedByRouteMethodAndStatus() async throws {
        let publisher = InMemoryPublisher()
        let app = Application(router: buildRouter(publisher: publisher, purchaseLists: .unreachable))
        try await app.test(.router) { client in
            let labels = [#"route="/buy""#, #"method="POST""#, #"status="415""#]
            let before = Self.sample(try await Self.scrape(client), "http_requests_total", labels) ?? 0
            for _ in 0..<3 {
                try await client.execute(uri: "/buy", method: .post, body: ByteBuffer(string: "x")) { response in
                    #expect(response.status == .unsupportedMediaType)
                }
            }
            let text = try await Self.scrape(client)
            // Other suites run at the same time and may add 415s of their own, never take any.
            #expect((Self.sample(text, "http_requests_total", labels) ?? 0) >= before + 3)
            let histogramCount = Self.sample(text, "http_request_duration_seconds_count", labels)
            #expect((histogramCount ?? 0) >= 3)
            #expect(text.contains("# TYPE http_request_duration_seconds histogram"))
        }
    }

    @Test func produceLatencyFailuresAndQueueDepthAreExported() async throws {
        let publisher = InMemoryPublisher()
        let app = Application(router: buildRouter(publisher: publisher, purchaseLists: .unreachable))
        try await app.test(.router) { client in
            let body = ByteBuffer(string: originalBody)
            let before = try await Self.scrape(client)
            let ackedBefore = Self.sample(before, "kafka_produce_duration_seconds_count", [#"result="acked""#]) ?? 0
            let failedBefore = Self.sample(before, "kafka_delivery_failures_total", [#"error="queueFull""#]) ?? 0

            try await client.execute(uri: "/buy", method: .post, headers: jsonHeaders, body: body) { response in
                #expect(response.status == .ok)
            }
            publisher.failNext(with: KafkaError(forTesting: .queueFull, message: "queue full", isRetriable: true))
            try await client.execute(uri: "/buy", method: .post, headers: jsonHeaders, body: body) { response in
                #expect(response.status == .serviceUnavailable)
            }
            let after = try await Self.scrape(client)
            #expect(
                (Self.sample(after, "kafka_produce_duration_seconds_count", [#"result="acked""#]) ?? 0) > ackedBefore)
            #expect(Self.sample(after, "kafka_delivery_failures_total", [#"error="queueFull""#]) == failedBefore + 1)

            // The gauge is the publisher's queue at scrape time. Other suites' routers record
            // their own (empty) queues into the same process-wide gauge when they are scraped, so
            // a scrape racing with one may show theirs: wait for ours, with a deadline.
            for depth in [7, 3] {
                publisher.queued.store(depth, ordering: .relaxed)
                let exported = try await waitUntil(timeout: .seconds(5)) {
                    Self.sample(try await Self.scrape(client), "kafka_producer_queue_messages", []) == Double(depth)
                }
                #expect(exported, "kafka_producer_queue_messages reads \(depth)")
            }
        }
    }
}
