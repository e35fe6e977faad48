import Configuration
import Kafka
import Logging
import Mongo
import ShopAuth
import ShopHTTP
import ShopKafka
import ShopService

/// cm-api's settings, read once at start (`docs/CONTRACT.md`); each default is documented where
/// its setting is declared.
struct CMAPIConfiguration: Sendable {
    /// `PORT`, default 3000.
    var port: Int
    /// `KAFKA_BROKERS` (required) and the SASL/TLS variables; see `KafkaConfiguration(environment:)`.
    var kafka: KafkaConfiguration
    /// `KAFKA_TOPIC`, default `scalable-shop-purchases`.
    var topic: String
    /// `KAFKA_GROUPID`, default `scalable-shop`.
    var groupID: String
    /// `MONGODB_URI` (required), e.g. `mongodb://mongo:27017/?w=majority`.
    var mongoURI: String
    /// `MONGODB_DB`, default `scalable-shop`.
    var database: String
    /// `MONGODB_COLLECTION`, default `purchases`.
    var collection: String
    /// `MONGODB_READ_TIMEOUT_MS` (default 2000): how long a list or receipt read may take, the wait
    /// for a connection included (the server stops the query after it too, `maxTimeMS`); a read
    /// that would take longer is refused with a 503 rather than served after cm-server gave up
    /// (`CM_API_TIMEOUT_MS`, 5 s).
    var readTimeout: Duration
    /// The MongoDB timeouts where `MONGODB_URI` sets none: `socketTimeoutMS` 30 s (libmongoc's
    /// own 300 s equals the consumer's `max.poll.interval.ms`: a hung MongoDB would get the
    /// member evicted from the group while it waits) and `serverSelectionTimeoutMS` 10 s.
    static let mongoTimeouts = MongoClient.Timeouts(socket: .seconds(30), serverSelection: .seconds(10))
    /// `LOG_LEVEL`: trace, debug, info (default), notice, warning, error or critical.
    var logLevel: Logger.Level
    /// `INGEST_BATCH_SIZE` (default 500): the most events written in one bulk insert.
    var batchSize: Int
    /// `INGEST_BATCH_WAIT_MS` (default 50): how long a batch waits to fill up.
    var batchWait: Duration
    /// `KAFKA_FETCH_WAIT_MAX_MS` (default 500): how long the broker may hold a fetch that finds no
    /// new events (librdkafka's `fetch.wait.max.ms`). Real brokers answer as soon as events
    /// arrive; the mock cluster always waits it out, so the benchmark lowers it.
    var fetchWait: Duration
    /// `SHUTDOWN_TIMEOUT_MS` (default 25000): how long a SIGTERM may take to finish the batch in
    /// hand, commit and leave the group.
    var shutdownTimeout: Duration
    /// `HTTP_IDLE_TIMEOUT_MS` (default 75000); see `ShopHTTPServer.idleTimeout`.
    var idleTimeout: Duration
    /// `AUTH_MODE` and the token settings, as cm-server's (`docs/SECURITY.md`).
    var auth: AuthSettings
    /// `CM_API_SERVICE_TOKEN`: when set (always with `jwt`), the purchase routes answer only
    /// requests that carry it.
    var serviceToken: ServiceToken?

    init(config: ConfigReader) throws(ConfigurationError) {
        port = try config.port("port", default: 3000)
        kafka = try KafkaConfiguration(config: config)
        topic = Self.topic(config)
        groupID = Self.groupID(config)
        // It may carry the password: a secret in swift-configuration's logs.
        mongoURI = try config.required(
            "mongodb.uri", "a mongodb:// or mongodb+srv:// connection string", isSecret: true)
        guard mongoURI.hasPrefix("mongodb://") || mongoURI.hasPrefix("mongodb+srv://") else {
            throw config.invalid("mongodb.uri", "must start with mongodb:// or mongodb+srv://")
        }
        database = config.text("mongodb.db", default: "scalable-shop")
        collection = config.text("mongodb.collection", default: "purchases")
        readTimeout = try config.milliseconds("mongodb.read.timeout.ms", default: 2000, range: 100...60_000)
        logLevel = try Logger.Level(config: config)
        batchSize = try config.integer("ingest.batch.size", default: 500, range: 1...10_000)
        batchWait = try config.milliseconds("ingest.batch.wait.ms", default: 50, range: 1...10_000)
        fetchWait = try config.milliseconds("kafka.fetch.wait.max.ms", default: 500, range: 1...10_000)
        shutdownTimeout = try config.milliseconds("shutdown.timeout.ms", default: 25_000, range: 1000...600_000)
        idleTimeout = try ShopHTTPServer.idleTimeout(config)
        auth = try AuthSettings(config: config)
        serviceToken = try ServiceToken.read(config)
        // A write waits for MongoDB without polling Kafka; past max.poll.interval.ms the group
        // evicts the member and rebalances. Each MongoDB wait must end well before (a retried
        // write waits twice).
        let pollInterval = KafkaConsumerConfiguration(kafka: kafka, groupID: groupID).maximumPollInterval
        let timeouts: MongoClient.Timeouts
        do {
            timeouts = try MongoClient.effectiveTimeouts(uri: mongoURI, defaults: Self.mongoTimeouts)
        } catch {
            throw config.invalid(
                "mongodb.uri", "is not a MongoDB connection string libmongoc accepts: \(error.message)")
        }
        for (name, value) in [
            ("socketTimeoutMS", timeouts.socket), ("serverSelectionTimeoutMS", timeouts.serverSelection),
        ]
        where value <= .zero || value * 4 > pollInterval {
            throw config.invalid(
                "mongodb.uri",
                "sets \(name) to \(value.components.seconds) s: it must be above 0 and at most a quarter of the "
                    + "consumer's max.poll.interval.ms (\(pollInterval.components.seconds) s), or a hung MongoDB gets cm-api "
                    + "evicted from its consumer group")
        }
    }
}

extension CMAPIConfiguration {
    /// The ingest's consumer: the contract's group, from the earliest offset for a new group, and
    /// the fetch wait from `KAFKA_FETCH_WAIT_MAX_MS`.
    var consumer: KafkaConsumerConfiguration {
        var consumer = KafkaConsumerConfiguration(kafka: kafka, groupID: groupID)
        consumer.autoOffsetReset = .earliest
        consumer.fetchMaximumWait = fetchWait
        return consumer
    }
}

extension CMAPIConfiguration {
    /// `KAFKA_TOPIC`: the purchases topic.
    static func topic(_ config: ConfigReader) -> String {
        config.text("kafka.topic", default: "scalable-shop-purchases")
    }

    /// `KAFKA_GROUPID`: the ingest's consumer group.
    static func groupID(_ config: ConfigReader) -> String {
        config.text("kafka.groupid", default: "scalable-shop")
    }
}
