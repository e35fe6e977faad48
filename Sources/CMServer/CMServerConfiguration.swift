import Configuration
import Kafka
import Logging
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopHTTP
import ShopKafka
import ShopService

/// cm-server's settings, read once at start (`docs/CONTRACT.md`); each default is documented
/// where its setting is declared.
struct CMServerConfiguration: Sendable {
    /// `PORT`, default 3001.
    var port: Int
    /// `KAFKA_BROKERS` (required) and the SASL/TLS variables; see `KafkaConfiguration(environment:)`.
    var kafka: KafkaConfiguration
    /// `KAFKA_TOPIC`, default `scalable-shop-purchases`.
    var topic: String
    /// `CM_API_HOST`: cm-api's `host:port`, default `localhost:3000`.
    var cmAPIHost: String
    /// `CM_API_TIMEOUT_MS` (default 5000): how long `GET /getAllUserBuys` waits for cm-api before
    /// answering 504.
    var cmAPITimeout: Duration
    /// `LOG_LEVEL`: trace, debug, info (default), notice, warning, error or critical.
    var logLevel: Logger.Level
    /// `KAFKA_DELIVERY_TIMEOUT_MS` (default 10000): how long `POST /buy` waits for the broker's
    /// acknowledgement before answering 503 (librdkafka's `message.timeout.ms`).
    var deliveryTimeout: Duration
    /// `KAFKA_LINGER_MS` (default 1): how long the producer waits for more purchases to batch
    /// with one; every `POST /buy` waits at least this long for its ack. `make bench` at 64
    /// connections: 7,740 purchases/s with librdkafka's 5 ms, 14,105 with 1 ms, 7,101 with 0
    /// (batches of one; p99 48 ms).
    var linger: Duration

    /// `SHUTDOWN_TIMEOUT_MS` (default 25000, under Kubernetes' 30 s grace period): how long a
    /// SIGTERM may take to finish the requests in flight and flush the producer.
    var shutdownTimeout: Duration
    /// `HTTP_IDLE_TIMEOUT_MS` (default 75000); see `ShopHTTPServer.idleTimeout`.
    var idleTimeout: Duration
    /// `AUTH_MODE` and the token settings (`docs/SECURITY.md`).
    var auth: AuthSettings
    /// `CM_API_SERVICE_TOKEN`: sent to cm-api with every list request; required with `jwt`.
    var serviceToken: ServiceToken?
    /// `RATE_LIMIT_*`: requests per principal on the public routes.
    var rateLimits: RateLimitSettings
    /// `TIMESTAMP_MAX_FUTURE_S` (default 86400, at most 604800): how far past the server's clock a
    /// purchase's `timestamp` may be (lists are newest first; a time far ahead would pin a
    /// purchase to the top of its list). Timestamps before 1970 are refused whatever it says.
    var timestampRule: TimestampRule
    /// `IDEMPOTENCY_LOOKUP_TIMEOUT_MS` (default 1000): how long a purchase with an
    /// `Idempotency-Key` waits for cm-api to say whether its purchaseId is stored; past it the
    /// purchase is produced (the ingest catches a reused key), so cm-api's trouble never stops
    /// purchases.
    var idempotencyLookupTimeout: Duration

    init(config: ConfigReader) throws(ConfigurationError) {
        port = try config.port("port", default: 3001)
        kafka = try KafkaConfiguration(config: config)
        topic = Self.topic(config)
        cmAPIHost = try config.hostPort("cm.api.host", default: "localhost:3000")
        cmAPITimeout = try config.milliseconds("cm.api.timeout.ms", default: 5000, range: 100...60_000)
        logLevel = try Logger.Level(config: config)
        deliveryTimeout = try config.milliseconds(
            "kafka.delivery.timeout.ms", default: 10_000, range: 100...300_000)
        linger = try config.milliseconds("kafka.linger.ms", default: 1, range: 0...1000)
        shutdownTimeout = try config.milliseconds(
            "shutdown.timeout.ms", default: 25_000, range: 1000...600_000)
        idleTimeout = try ShopHTTPServer.idleTimeout(config)
        auth = try AuthSettings(config: config)
        serviceToken = try ServiceToken.read(config)
        rateLimits = try RateLimitSettings(config: config)
        let largest = Int(TimestampRule.largestMaximumFuture.components.seconds)
        idempotencyLookupTimeout = try config.milliseconds(
            "idempotency.lookup.timeout.ms", default: 1000, range: 50...10_000)
        timestampRule = TimestampRule(
            maximumFuture: .seconds(try config.integer("timestamp.max.future.s", default: 86_400, range: 0...largest)))
        // A purchase in flight at SIGTERM waits for its delivery; the shutdown must outlast it.
        guard shutdownTimeout > deliveryTimeout + .seconds(5) else {
            throw config.invalid(
                "shutdown.timeout.ms",
                "must exceed KAFKA_DELIVERY_TIMEOUT_MS by more than 5000, so requests in flight are answered")
        }
    }
}

extension CMServerConfiguration {
    /// `KAFKA_TOPIC`: the purchases topic.
    static func topic(_ config: ConfigReader) -> String {
        config.text("kafka.topic", default: "scalable-shop-purchases")
    }
}
