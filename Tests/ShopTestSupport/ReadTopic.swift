import Foundation
public import Kafka
import Logging

/// Everything on `topic` as a new consumer group reads it from the start: polls until `count`
/// messages arrived (or `timeout`), then for `settle` more, so that an extra message shows.
public func readTopic(
    _ topic: String,
    bootstrapServers: String,
    expecting count: Int,
    timeout: Duration = .seconds(40),
    settle: Duration = .seconds(1)
) async throws -> [KafkaConsumerMessage] {
    var configuration = KafkaConsumerConfiguration(
        kafka: KafkaConfiguration(bootstrapServers: [bootstrapServers]),
        groupID: "check-\(UUID().uuidString.prefix(8))")
    configuration.sessionTimeout = .seconds(6)
    var logger = Logger(label: "read-topic")
    logger.logLevel = .error
    let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: logger)
    var messages: [KafkaConsumerMessage] = []
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while messages.count < count, ContinuousClock.now < deadline {
        messages += try await consumer.poll(maxMessages: 500, maxWait: .milliseconds(200))
    }
    messages += try await consumer.poll(maxMessages: 500, maxWait: settle)
    await consumer.close()
    return messages
}
