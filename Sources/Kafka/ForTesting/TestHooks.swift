internal import CRdKafka

// Hooks for tests of the binding and of the services above it, so that no test needs librdkafka's
// C API or the binding's internals. Imported with `@_spi(Testing) import Kafka`; not part of the
// binding's API for services.

extension KafkaProducer {
    /// Raises a fatal error in the producer as the broker would by fencing it or breaking its
    /// idempotence guarantee (librdkafka's `rd_kafka_test_fatal_error` with
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`): ``fatalFailure`` is set and every later send fails.
    /// Returns `false` if the client already had a fatal error.
    @_spi(Testing) @discardableResult
    public func raiseFatalErrorForTesting(reason: String = "raised by a test") -> Bool {
        rd_kafka_test_fatal_error(client.handle, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason)
            == RD_KAFKA_RESP_ERR_NO_ERROR
    }
}

extension KafkaConsumer {
    /// Raises a fatal error in the consumer as the group coordinator would by fencing it
    /// (`rd_kafka_test_fatal_error` with `_FENCED`): ``fatalFailure`` is set and polling fails.
    /// Returns `false` if the client already had a fatal error.
    @_spi(Testing) @discardableResult
    public func raiseFatalErrorForTesting(reason: String = "raised by a test") -> Bool {
        rd_kafka_test_fatal_error(client.handle, RD_KAFKA_RESP_ERR__FENCED, reason) == RD_KAFKA_RESP_ERR_NO_ERROR
    }
}

extension KafkaError {
    /// An error as the binding would report it, for stand-ins of the services' Kafka-facing parts.
    @_spi(Testing)
    public init(forTesting code: Code, message: String, isRetriable: Bool, possiblyPersisted: Bool = false) {
        self.init(code: code, message: message, isRetriable: isRetriable, possiblyPersisted: possiblyPersisted)
    }
}

extension KafkaConsumerConfiguration {
    /// The librdkafka properties the consumer is created with, by their librdkafka names.
    @_spi(Testing)
    public var librdkafkaProperties: [String: String] { properties }
}

extension KafkaProducerConfiguration {
    /// The librdkafka properties the producer is created with, by their librdkafka names.
    @_spi(Testing)
    public var librdkafkaProperties: [String: String] { properties }
}

extension KafkaConsumerMessage {
    /// A message as a consumer would receive it, for stand-ins and for code that handles messages.
    @_spi(Testing)
    public init(
        forTesting topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8],
        headers: [KafkaHeader] = [],
        timestampMilliseconds: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }
}
