import Foundation
import Kafka
import Logging
import Testing

let testLogger: Logger = {
    var logger = Logger(label: "kafka-tests")
    logger.logLevel = .error
    return logger
}()

func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

extension KafkaMockCluster {
    func producerConfiguration(deliveryTimeout: Duration = .seconds(10)) -> KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(kafka: KafkaConfiguration(bootstrapServers: [bootstrapServers]))
        configuration.deliveryTimeout = deliveryTimeout
        return configuration
    }

    func consumerConfiguration(group: String, commitInterval: Duration = .seconds(1)) -> KafkaConsumerConfiguration {
        var configuration = KafkaConsumerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [bootstrapServers]),
            groupID: group
        )
        configuration.commitInterval = commitInterval
        configuration.sessionTimeout = .seconds(6)
        return configuration
    }

    func makeProducer(deliveryTimeout: Duration = .seconds(10)) throws -> KafkaProducer {
        try KafkaProducer(configuration: producerConfiguration(deliveryTimeout: deliveryTimeout), logger: testLogger)
    }

    func makeConsumer(topic: String, group: String, commitInterval: Duration = .seconds(1)) throws -> KafkaConsumer {
        try KafkaConsumer(
            configuration: consumerConfiguration(group: group, commitInterval: commitInterval),
            topics: [topic],
            logger: testLogger
        )
    }
}

/// Polls `consumer`, marking every batch processed, until `count` messages arrived or `timeout`.
func consume(
    _ consumer: KafkaConsumer,
    count: Int,
    timeout: Duration = .seconds(30),
    markProcessed: Bool = true
) async throws -> [KafkaConsumerMessage] {
    var received: [KafkaConsumerMessage] = []
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while received.count < count, ContinuousClock.now < deadline {
        let batch = try await consumer.poll(maxMessages: count - received.count, maxWait: .milliseconds(200))
        if markProcessed { try consumer.markProcessed(batch) }
        received += batch
    }
    return received
}

/// Polls every consumer until their assignments are all non-empty and together cover
/// `partitions` partitions of the topic, so that a later rebalance cannot move messages.
/// - Returns: what each consumer received meanwhile, not marked processed.
@discardableResult
func waitForAssignment(
    of consumers: [KafkaConsumer],
    partitions: Int,
    timeout: Duration = .seconds(30)
) async throws -> [[KafkaConsumerMessage]] {
    var received = Array(repeating: [KafkaConsumerMessage](), count: consumers.count)
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        var all: [KafkaTopicPartition] = []
        var everyoneHasSome = true
        for (index, consumer) in consumers.enumerated() {
            received[index] += try await consumer.poll(maxMessages: 100, maxWait: .milliseconds(100))
            let assignment = try consumer.assignment()
            everyoneHasSome = everyoneHasSome && !assignment.isEmpty
            all += assignment
        }
        if everyoneHasSome, Set(all).count == partitions, all.count == partitions { return received }
    }
    Issue.record("consumers were not assigned \(partitions) partitions within \(timeout)")
    return received
}

extension KafkaConsumerMessage {
    var text: String { String(decoding: value, as: UTF8.self) }
}
