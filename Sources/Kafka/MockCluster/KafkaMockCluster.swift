internal import CRdKafka
internal import Logging

/// librdkafka's in-process mock cluster: real Kafka protocol on real TCP sockets, kept in
/// memory. It is the broker for tests and the local stack (no Kafka broker runs here); it
/// lives as long as this value.
///
/// The mock in librdkafka 2.0 does not answer the Admin API's CreateTopics, so topics are
/// created through ``createTopic(_:partitions:replicationFactor:)``. An unknown topic is
/// created with 4 partitions on first produce.
public final class KafkaMockCluster: Sendable {
    /// The client that hosts the cluster; librdkafka requires one.
    private let host: RDKafkaClient
    /// `rd_kafka_mock_cluster_t` is internally locked and safe to use from any thread.
    private nonisolated(unsafe) let cluster: OpaquePointer
    /// The broker ids, `1...brokers`.
    public let brokerIDs: ClosedRange<Int32>

    /// Starts a cluster of `brokers` brokers listening on ephemeral loopback ports.
    public init(brokers: Int = 1) throws(KafkaError) {
        guard brokers >= 1 else { throw .invalidUsage("a mock cluster needs at least one broker") }
        var logger = Logger(label: "kafka-mock")
        logger.logLevel = .warning
        host = try RDKafkaClient(kind: .producer, properties: ["log_level": "4"], logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(host.handle, Int32(brokers)) else {
            throw KafkaError(code: .broker, message: "could not start the mock cluster", isRetriable: false)
        }
        self.cluster = cluster
        brokerIDs = 1...Int32(brokers)
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    /// The `bootstrap.servers` value for clients, e.g. `127.0.0.1:40123`.
    public var bootstrapServers: String {
        String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Creates a topic.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        guard partitions >= 1, replicationFactor >= 1, replicationFactor <= brokerIDs.count else {
            throw .invalidUsage("a topic needs at least one partition and 1...\(brokerIDs.count) replicas")
        }
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "create topic \(name)") }
    }

    /// Makes the cluster answer that `topic` does not exist (`UNKNOWN_TOPIC_OR_PART` in its
    /// metadata, as after the topic was deleted), or, with `missing` false, that it exists again
    /// with its partitions and records as they were.
    public func setTopicMissing(_ topic: String, _ missing: Bool = true) {
        rd_kafka_mock_topic_set_error(
            cluster, topic, missing ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : RD_KAFKA_RESP_ERR_NO_ERROR)
    }

    /// Takes a broker down: its connections close and it accepts no more until brought up.
    public func takeBrokerDown(_ id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_down(cluster, id), "take broker \(id) down")
    }

    /// Delays every answer of a broker by `delay` (its round-trip time); `.zero` restores it.
    /// Requests are still handled at once, so a produce can be stored while its answer waits.
    public func setRoundTripTime(of id: Int32, to delay: Duration) throws(KafkaError) {
        try check(
            rd_kafka_mock_broker_set_rtt(cluster, id, delay.timeoutMilliseconds), "set broker \(id) round-trip time")
    }

    /// Brings a broker taken down back up.
    public func bringBrokerUp(_ id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_up(cluster, id), "bring broker \(id) up")
    }

    private func check(_ err: rd_kafka_resp_err_t, _ what: String) throws(KafkaError) {
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: what) }
    }
}
