import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
@_spi(Testing) import Kafka
import Logging
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopKafka
import ShopService
import ShopTestSupport
import Testing

@testable import CMServer

/// cm-server's router with its real Kafka publisher, on a mock cluster with a topic of its own.
struct LiveServer {
    let cluster: KafkaMockCluster
    let topic: String
    let producer: KafkaProducer
    let topicWatch: TopicWatch
    let app: Application<RouterResponder<AppRequestContext>>

    init(partitions: Int, deliveryTimeout: Duration? = nil, logLevel: Logger.Level = .error) throws {
        var logger = Logger(label: "cm-server-tests")
        logger.logLevel = logLevel
        cluster = try KafkaMockCluster()
        topic = "purchases-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic(topic, partitions: partitions)
        var configuration = KafkaProducerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers]))
        if let deliveryTimeout { configuration.deliveryTimeout = deliveryTimeout }
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        self.producer = producer
        topicWatch = TopicWatch(topics: [topic], service: "cm-server", interval: .milliseconds(200), logger: logger) {
            topic throws(KafkaError) in try await producer.topicMetadata(topic)
        }
        app = Application(
            router: buildRouter(
                publisher: KafkaPurchasePublisher(producer: producer, topic: topic, topicWatch: topicWatch),
                purchaseLists: .unreachable),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            services: [producer, topicWatch], logger: logger)
    }
}

/// cm-server's real HTTP server and real Kafka publisher against librdkafka's mock cluster.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LiveKafkaTests {
    /// A deleted topic makes cm-server not ready, saying so, and every purchase a 503 at once
    /// that says nothing was stored, instead of one held for the whole delivery timeout.
    @Test func aMissingTopicIsNotReadyAndRefusesPurchasesAtOnce() async throws {
        let server = try LiveServer(partitions: 2, deliveryTimeout: .seconds(10))
        try await server.app.test(.live) { client in
            func buy() async throws -> (HTTPResponse.Status, [String: Any], Duration) {
                let start = ContinuousClock.now
                return try await client.execute(
                    uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
                ) { ($0.status, try json($0.body), ContinuousClock.now - start) }
            }
            #expect(try await buy().0 == .ok)
            server.cluster.setTopicMissing(server.topic)
            var reason = ""
            let notReady = try await waitUntil(timeout: .seconds(10)) {
                try await client.execute(uri: "/readyz", method: .get) { response in
                    reason = String(buffer: response.body)
                    return response.status == .serviceUnavailable
                }
            }
            #expect(notReady && reason.contains("the Kafka topic \(server.topic) does not exist"), "\(reason)")
            let (status, answer, took) = try await buy()
            #expect(status == .serviceUnavailable && answer["possiblyPersisted"] as? Bool == false)
            #expect(took < .seconds(1), "refused at once, not after the 10 s delivery timeout: \(took)")
            server.cluster.setTopicMissing(server.topic, false)
            #expect(
                try await waitUntil(timeout: .seconds(10)) {
                    try await client.execute(uri: "/readyz", method: .get) { $0.status == .ok }
                })
            #expect(try await buy().0 == .ok)
        }
    }

    @Test func acknowledgedPurchasesAreOnTheTopicKeyedByUseridAndReadinessFollowsTheBroker() async throws {
        let server = try LiveServer(partitions: 3, deliveryTimeout: .seconds(2))
        let (cluster, topic, app) = (server.cluster, server.topic, server.app)

        let answers = try await app.test(.live) { client in
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            var answers: [[String: Any]] = []
            for i in 0..<60 {
                let body = #"{"username":"user \#(i % 6)","userid":"id-\#(i % 6)","price":"\#(i).25"}"#
                answers.append(
                    try await client.execute(
                        uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: body)
                    ) {
                        response in
                        #expect(response.status == .ok)
                        return try json(response.body)
                    }
                )
            }
            try cluster.takeBrokerDown(1)
            // Readiness follows what the producer learns (librdkafka's ALL_BROKERS_DOWN, then a
            // failed probe), within a few of the orchestrator's probes.
            #expect(
                try await waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
                    try await client.execute(uri: "/readyz", method: .get) { $0.status == .serviceUnavailable }
                })
            let start = ContinuousClock.now
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders,
                body: ByteBuffer(string: #"{"username":"late","userid":"late","price":"1.00"}"#)
            ) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "1")
            }
            // librdkafka, not Swift, decides the failure, so no purchase can be written after its
            // 503. With the leader just lost (the /readyz above refreshed metadata against a dead
            // broker), it fails the message 4.0-5.7 s after a 2 s message.timeout.ms (5 runs):
            // the delivery timeout plus librdkafka's timeout scan, and up to 10.7 s with both
            // cores busy (KafkaProducerTests). The bound is that, not a hang.
            let elapsed = ContinuousClock.now - start
            #expect(elapsed < .seconds(15), "503 after \(elapsed); delivery timeout 2 s")
            try cluster.bringBrokerUp(1)
            // Back without a purchase to tell it: readiness probes the broker again by itself.
            #expect(
                try await waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
                    try await client.execute(uri: "/readyz", method: .get) { $0.status == .ok }
                })
            return answers.map { answer in answer.mapValues { "\($0)" } }
        }

        let messages = try await readTopic(
            topic, bootstrapServers: cluster.bootstrapServers, expecting: 60, timeout: .seconds(30), settle: .seconds(2)
        )

        #expect(messages.count == 60, "exactly the acknowledged purchases, nothing from the refused one")
        let events = try messages.map { try PurchaseEvent(kafkaValue: $0.value) }
        #expect(
            Set(events.map { $0.purchaseId.uuidString.lowercased() }) == Set(answers.compactMap { $0["purchaseId"] }))
        for (message, event) in zip(messages, events) {
            #expect(message.key == Array(event.purchase.userid.utf8))
            let answer = answers.first { $0["purchaseId"] == event.purchaseId.uuidString.lowercased() }
            #expect(answer?["partition"] == "\(message.partition)")
            #expect(answer?["offset"] == "\(message.offset)")
        }
        #expect(Set(events.map(\.purchase.username)) == Set((0..<6).map { "user \($0)" }))
    }

    /// A producer broken for good (librdkafka's fatal error, raised with its test hook) fails
    /// liveness and readiness with the reason, so the orchestrator replaces the process, while
    /// every purchase is refused with a 503.
    @Test func aFatalProducerErrorFailsLivenessWithTheReason() async throws {
        let server = try LiveServer(partitions: 1, logLevel: .critical)
        let producer = server.producer
        try await server.app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            producer.raiseFatalErrorForTesting()
            for path in ["/healthz", "/readyz"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .serviceUnavailable, "\(path)")
                    #expect(String(buffer: response.body).contains("raised by a test"), "\(path)")
                }
            }
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
            ) { #expect($0.status == .serviceUnavailable) }
        }
    }

    /// 50 clients, each a user buying 20 times in a row over its own connection, against the
    /// real server: every acknowledged purchase is on the topic exactly once, with its fields,
    /// keyed by userid, where the answer said, and each user's purchases in the order sent.
    /// A retry with the same Idempotency-Key gets the same purchaseId.
    /// A slow broker is not a missing one: readiness answers at once from the producer's state,
    /// well inside the chart's probe timeout, instead of waiting on a metadata request.
    @Test func readinessAnswersAtOnceWhileTheBrokerIsSlow() async throws {
        let server = try LiveServer(partitions: 1)
        try await server.app.test(.live) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders,
                body: ByteBuffer(string: #"{"username":"slow","userid":"slow","price":"1.00"}"#)
            ) { #expect($0.status == .ok) }
            try server.cluster.setRoundTripTime(of: 1, to: .seconds(5))
            for _ in 0..<5 {
                let start = ContinuousClock.now
                try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
                let elapsed = ContinuousClock.now - start
                // The old check answered after its 2 s metadata time-out; the margin below that is for
                // a test run whose other suites keep the machine busy.
                #expect(elapsed < .milliseconds(1500), "readiness took \(elapsed) with a 5 s broker round trip")
            }
            try server.cluster.setRoundTripTime(of: 1, to: .zero)
        }
    }

    @Test func aThousandPurchasesFromFiftyConcurrentClientsAreEachOnTheTopicOnce() async throws {
        let server = try LiveServer(partitions: 4)
        let (cluster, topic, app) = (server.cluster, server.topic, server.app)

        struct Sent: Sendable {
            var username: String, userid: String, price: String
            var purchaseId: String, partition: Int, offset: Int
        }
        let (sent, retried) = try await app.test(.live) { client in
            let url = "http://127.0.0.1:\(client.port!)/buy"
            let sent = try await withThrowingTaskGroup(of: [Sent].self) { group in
                for user in 0..<50 {
                    group.addTask {
                        var mine: [Sent] = []
                        for n in 0..<20 {
                            let username = "user \(user) ü"
                            let price = "\(user).\(String(format: "%02d", n))"
                            let body = #"{"username":"\#(username)","userid":"id-\#(user)","price":"\#(price)"}"#
                            let answer = try await Self.post(url, body: body)
                            mine.append(
                                Sent(
                                    username: username, userid: "id-\(user)", price: price,
                                    purchaseId: answer["purchaseId"] as? String ?? "",
                                    partition: answer["partition"] as? Int ?? -1, offset: answer["offset"] as? Int ?? -1
                                ))
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            // A client that lost the answer retries with its key: same purchaseId.
            let body = #"{"username":"retrier","userid":"id-r","price":"5.00"}"#
            let first = try await Self.post(url, body: body, idempotencyKey: "order-42")
            let second = try await Self.post(url, body: body, idempotencyKey: "order-42")
            return (sent, [first["purchaseId"] as? String, second["purchaseId"] as? String])
        }
        #expect(sent.count == 1000)
        #expect(Set(sent.map(\.purchaseId)).count == 1000, "a distinct purchaseId per purchase")
        #expect(retried[0] != nil && retried[0] == retried[1])

        let messages = try await readTopic(topic, bootstrapServers: cluster.bootstrapServers, expecting: 1002)

        #expect(messages.count == 1002, "1,000 purchases and the retried one twice (cm-api stores it once)")
        let events = try messages.map { try PurchaseEvent(kafkaValue: $0.value) }
        let byId = Dictionary(grouping: zip(messages, events), by: { $0.1.purchaseId.uuidString.lowercased() })
        for purchase in sent {
            let found = byId[purchase.purchaseId] ?? []
            #expect(found.count == 1, "\(purchase.purchaseId) once")
            guard let (message, event) = found.first else { continue }
            #expect(event.purchase.username == purchase.username)
            #expect(event.purchase.userid == purchase.userid)
            #expect(event.purchase.price.description == purchase.price)
            #expect(message.key == Array(purchase.userid.utf8))
            #expect(Int(message.partition) == purchase.partition && Int(message.offset) == purchase.offset)
        }
        #expect(byId[retried[0] ?? ""]?.count == 2)
        // One user's purchases are on one partition in the order they were sent.
        for user in 0..<50 {
            let mine = sent.filter { $0.userid == "id-\(user)" }
            #expect(Set(mine.map(\.partition)).count == 1)
            #expect(mine.map(\.offset) == mine.map(\.offset).sorted())
        }
    }

    static func post(_ url: String, body: String, idempotencyKey: String? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let idempotencyKey { request.headers.add(name: "Idempotency-Key", value: idempotencyKey) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 16)
        #expect(response.status == .ok, "\(String(buffer: bytes))")
        return try json(bytes)
    }
}
