import Events
import Foundation
import Hummingbird
import HummingbirdTesting
import Kafka
import Logging
import Testing

@testable import CMServer

/// cm-server's real HTTP server and real Kafka publisher against librdkafka's mock cluster.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LiveKafkaTests {
    @Test func acknowledgedPurchasesAreOnTheTopicKeyedByUseridAndReadinessFollowsTheBroker() async throws {
        var logger = Logger(label: "cm-server-tests")
        logger.logLevel = .error
        let cluster = try KafkaMockCluster()
        let topic = "purchases-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic(topic, partitions: 3)
        var configuration = KafkaProducerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers]))
        configuration.deliveryTimeout = .seconds(2)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let publisher = KafkaPurchasePublisher(producer: producer, topic: topic)
        let app = Application(
            router: buildRouter(publisher: publisher, purchaseLists: .unreachable), services: [producer], logger: logger
        )

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
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
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
            // the delivery timeout plus librdkafka's timeout scan. The bound is that, not a hang.
            let elapsed = ContinuousClock.now - start
            #expect(elapsed < .seconds(8), "503 after \(elapsed); delivery timeout 2 s")
            try cluster.bringBrokerUp(1)
            return answers.map { answer in answer.mapValues { "\($0)" } }
        }

        var consumerConfiguration = KafkaConsumerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers]),
            groupID: "check-\(UUID().uuidString.prefix(8))"
        )
        consumerConfiguration.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, topics: [topic], logger: logger)
        var messages: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while messages.count < 60, ContinuousClock.now < deadline {
            messages += try await consumer.poll(maxMessages: 100, maxWait: .milliseconds(200))
        }
        messages += try await consumer.poll(maxMessages: 100, maxWait: .seconds(2))
        await consumer.close()

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
}
