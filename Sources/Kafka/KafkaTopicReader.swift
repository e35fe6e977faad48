internal import CRdKafka
internal import Foundation
public import Logging

/// Reads what a topic holds now: every partition from its oldest record to the end it had when
/// the read began. It joins no consumer group and commits nothing, so it disturbs no consumer.
/// For operators' tools (a dead-letter topic listed and redriven), not for following a stream.
public struct KafkaTopicReader: Sendable {
    public let kafka: KafkaConfiguration
    public let logger: Logger

    public init(kafka: KafkaConfiguration, logger: Logger) {
        self.kafka = kafka
        self.logger = logger
    }

    /// Every record of `topic`, per partition in offset order (partitions in order).
    /// - Throws: ``KafkaError``: the topic is unknown, no broker answers, or not everything
    ///   arrived within `timeout`.
    public func readAll(_ topic: String, timeout: Duration = .seconds(30)) async throws(KafkaError)
        -> [KafkaConsumerMessage]
    {
        let (kafka, logger) = (self.kafka, self.logger)
        return try await runBlocking { () throws(KafkaError) in
            var properties = kafka.properties
            // librdkafka needs a group id for a consumer handle; assign() never joins the group.
            properties["group.id"] = "topic-reader-\(UUID().uuidString.prefix(8).lowercased())"
            properties["enable.auto.commit"] = "false"
            properties["enable.auto.offset.store"] = "false"
            properties.merge(kafka.additionalProperties) { _, additional in additional }
            let client = try RDKafkaClient(kind: .consumer, properties: properties, logger: logger)
            rd_kafka_poll_set_consumer(client.handle)
            defer { _ = rd_kafka_assign(client.handle, nil) }
            let deadline = ContinuousClock.now.advanced(by: timeout)
            let metadata = try client.topicMetadata(topic, timeout: timeout)
            var ends: [Int32: Int64] = [:]
            let list = RDKafkaPartitionList(capacity: metadata.partitionCount)
            for partition in 0..<Int32(metadata.partitionCount) {
                var (low, high): (Int64, Int64) = (-1, -1)
                let err = rd_kafka_query_watermark_offsets(
                    client.handle, topic, partition, &low, &high,
                    Int32(ContinuousClock.now.duration(to: deadline).timeoutMilliseconds))
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError(err, context: "watermarks of \(topic)[\(partition)]")
                }
                guard high > low else { continue }
                ends[partition] = high
                list.add(KafkaTopicPartition(topic: topic, partition: partition), offset: low)
            }
            guard !ends.isEmpty else { return [] }
            let err = rd_kafka_assign(client.handle, list.pointer)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "assign \(topic)") }
            var messages: [Int32: [KafkaConsumerMessage]] = [:]
            var remaining = Set(ends.keys)
            while !remaining.isEmpty {
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .zero else {
                    throw KafkaError(
                        code: .timedOut,
                        message: "reading \(topic): partitions \(remaining.sorted()) not read to the end",
                        isRetriable: true)
                }
                guard let raw = rd_kafka_consumer_poll(client.handle, min(left, .milliseconds(200)).timeoutMilliseconds)
                else { continue }
                defer { rd_kafka_message_destroy(raw) }
                guard raw.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    if raw.pointee.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                    throw KafkaError(raw.pointee.err, context: "reading \(topic)")
                }
                let message = KafkaConsumerMessage(raw)
                guard let end = ends[message.partition], message.offset < end else { continue }
                messages[message.partition, default: []].append(message)
                if message.offset >= end - 1 { remaining.remove(message.partition) }
            }
            return messages.keys.sorted().flatMap { messages[$0]! }
        }
    }
}
