/// How to reach and authenticate with a Kafka cluster; shared by producers and consumers.
///
/// Defaults: plaintext, client id `scalable-shop`. Every field maps to a librdkafka property
/// (see librdkafka's CONFIGURATION.md); `additionalProperties` are applied last and win.
public struct KafkaConfiguration: Sendable, Hashable {
    /// `bootstrap.servers`: `host:port` of one or more brokers.
    public var bootstrapServers: [String]
    /// `client.id`, shown in broker logs and metrics.
    public var clientID: String = "scalable-shop"
    /// Transport security and authentication.
    public var security: Security = .plaintext
    /// Any further librdkafka properties, applied after the typed fields.
    public var additionalProperties: [String: String] = [:]

    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
    }

    /// `security.protocol` and its credentials.
    public struct Security: Sendable, Hashable {
        /// `ssl.ca.location`: a CA bundle to trust, or `nil` for the system store.
        public var tlsCALocation: String?
        /// Whether to use TLS.
        public var tls: Bool
        /// SASL credentials, or `nil` for no SASL.
        public var sasl: SASL?

        public static let plaintext = Security(tlsCALocation: nil, tls: false, sasl: nil)

        public static func tls(caLocation: String? = nil) -> Security {
            Security(tlsCALocation: caLocation, tls: true, sasl: nil)
        }

        public static func sasl(_ sasl: SASL, tls: Bool = true, caLocation: String? = nil) -> Security {
            Security(tlsCALocation: caLocation, tls: tls, sasl: sasl)
        }

        var properties: [String: String] {
            var properties: [String: String] = [:]
            switch (tls, sasl) {
            case (false, nil): properties["security.protocol"] = "plaintext"
            case (true, nil): properties["security.protocol"] = "ssl"
            case (false, .some): properties["security.protocol"] = "sasl_plaintext"
            case (true, .some): properties["security.protocol"] = "sasl_ssl"
            }
            if let tlsCALocation { properties["ssl.ca.location"] = tlsCALocation }
            if let sasl {
                properties["sasl.mechanism"] = sasl.mechanism
                properties["sasl.username"] = sasl.username
                properties["sasl.password"] = sasl.password
            }
            return properties
        }
    }

    /// SASL username/password authentication (`KAFKA_USERNAME`/`KAFKA_PASSWORD`).
    public struct SASL: Sendable, Hashable, CustomStringConvertible {
        /// `sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (default).
        public var mechanism: String
        public var username: String
        public var password: String

        public init(mechanism: String = "SCRAM-SHA-512", username: String, password: String) {
            self.mechanism = mechanism
            self.username = username
            self.password = password
        }

        /// Never prints the password.
        public var description: String { "SASL(\(mechanism), username: \(username))" }
    }

    /// The connection properties without `additionalProperties`, which the producer and
    /// consumer apply last so that they override everything.
    var properties: [String: String] {
        var properties = security.properties
        properties["bootstrap.servers"] = bootstrapServers.joined(separator: ",")
        properties["client.id"] = clientID
        return properties
    }
}

/// A producer's settings. Defaults favour safety: idempotent, `acks=all`, 30 s delivery bound.
public struct KafkaProducerConfiguration: Sendable, Hashable {
    public var kafka: KafkaConfiguration
    /// `message.timeout.ms`: the longest a `send` waits for the broker's acknowledgement,
    /// retries included, before it fails with ``KafkaError/Code/timedOut``.
    public var deliveryTimeout: Duration = .seconds(30)
    /// `linger.ms`: how long to wait for more messages to fill a batch.
    public var linger: Duration = .milliseconds(5)
    /// `batch.num.messages`: the most messages in one batch.
    public var batchMaximumMessages: Int = 10_000
    /// `compression.type`.
    public var compression: Compression = .none
    /// `queue.buffering.max.messages`: how many messages may wait locally; beyond it `send`
    /// fails at once with ``KafkaError/Code/queueFull``.
    public var queueMaximumMessages: Int = 100_000
    /// How long a graceful shutdown waits for queued messages to be delivered.
    public var shutdownFlushTimeout: Duration = .seconds(10)
    /// Once librdkafka reports every broker down, how long a `send` waits for a metadata request
    /// to show one is back before failing at once with ``KafkaError/Code/brokersUnavailable``
    /// (instead of queueing the message for the whole `deliveryTimeout`).
    public var reachabilityProbeTimeout: Duration = .milliseconds(500)
    /// `reconnect.backoff.max.ms`: the longest librdkafka waits between attempts to reconnect to
    /// a broker (its default is 10 s, which would keep a producer failing that long after a
    /// broker is back).
    public var reconnectBackoffMaximum: Duration = .seconds(1)
    /// How long the producer's event thread waits on an idle producer before it looks again. Every
    /// delivery report and error wakes it at once, and so does a shutdown; the wait only decides
    /// how often an idle producer wakes for nothing (issue 31's idle cost).
    public var idleEventWait: Duration = .seconds(1)

    public init(kafka: KafkaConfiguration) {
        self.kafka = kafka
    }

    public enum Compression: String, Sendable, Hashable, CaseIterable {
        case none, gzip, snappy, lz4, zstd
    }

    var properties: [String: String] {
        var properties = kafka.properties
        properties.merge(
            [
                "enable.idempotence": "true",
                "acks": "all",
                "message.timeout.ms": String(deliveryTimeout.milliseconds),
                "linger.ms": String(linger.milliseconds),
                "batch.num.messages": String(batchMaximumMessages),
                "compression.type": compression.rawValue,
                "queue.buffering.max.messages": String(queueMaximumMessages),
                "reconnect.backoff.max.ms": String(reconnectBackoffMaximum.milliseconds),
            ]
        ) { _, typed in typed }
        return properties.merging(kafka.additionalProperties) { _, additional in additional }
    }
}

/// A group consumer's settings. Offsets are stored only when the application says a message
/// is processed, and committed after that (periodically, on revoke, on close, or on request).
public struct KafkaConsumerConfiguration: Sendable, Hashable {
    public var kafka: KafkaConfiguration
    /// `group.id`.
    public var groupID: String
    /// `auto.offset.reset`: where a group with no committed offset starts.
    public var autoOffsetReset: OffsetReset = .earliest
    /// `auto.commit.interval.ms`: how often stored offsets are committed in the background.
    public var commitInterval: Duration = .seconds(1)
    /// `session.timeout.ms`: how soon a silent member is considered dead.
    public var sessionTimeout: Duration = .seconds(10)
    /// `max.poll.interval.ms`: the longest gap between polls before the member leaves the group.
    public var maximumPollInterval: Duration = .seconds(300)
    /// `fetch.wait.max.ms`: how long a broker may hold a fetch that finds no data. A real broker
    /// answers as soon as data arrives; librdkafka's mock cluster always waits this long, which
    /// then shows up as delivery latency.
    public var fetchMaximumWait: Duration = .milliseconds(500)
    /// `queued.max.messages.kbytes`: how much fetched data librdkafka may hold ahead of the
    /// application. Under a backlog it fills up, so it bounds most of a consumer's memory:
    /// librdkafka's 64 MB default doubled cm-api's resident size while it caught up.
    public var prefetchMaximumKilobytes: Int = 16_384

    public init(kafka: KafkaConfiguration, groupID: String) {
        self.kafka = kafka
        self.groupID = groupID
    }

    public enum OffsetReset: String, Sendable, Hashable {
        case earliest, latest
    }

    var properties: [String: String] {
        var properties = kafka.properties
        properties.merge(
            [
                "group.id": groupID,
                "auto.offset.reset": autoOffsetReset.rawValue,
                "enable.auto.offset.store": "false",
                "enable.auto.commit": "true",
                "auto.commit.interval.ms": String(commitInterval.milliseconds),
                "session.timeout.ms": String(sessionTimeout.milliseconds),
                "max.poll.interval.ms": String(maximumPollInterval.milliseconds),
                "fetch.wait.max.ms": String(fetchMaximumWait.milliseconds),
                "queued.max.messages.kbytes": String(prefetchMaximumKilobytes),
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.partition.eof": "false",
            ]
        ) { _, typed in typed }
        return properties.merging(kafka.additionalProperties) { _, additional in additional }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down, as librdkafka's `*.ms` properties take them.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// Milliseconds clamped to the `int` librdkafka's timeouts take; negative becomes 0.
    var timeoutMilliseconds: Int32 {
        Int32(clamping: max(0, milliseconds))
    }
}
