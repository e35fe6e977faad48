import Events
import Kafka
import Logging
import ShopHTTP

/// cm-api's settings, read once from the environment at start (`docs/CONTRACT.md`).
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

    init(environment: Environment) throws(EnvironmentError) {
        port = try environment.port("PORT", default: 3000)
        kafka = try KafkaConfiguration(environment: environment)
        topic = environment.string("KAFKA_TOPIC", default: "scalable-shop-purchases")
        groupID = environment.string("KAFKA_GROUPID", default: "scalable-shop")
        mongoURI = try environment.required("MONGODB_URI", "a mongodb:// or mongodb+srv:// connection string")
        guard mongoURI.hasPrefix("mongodb://") || mongoURI.hasPrefix("mongodb+srv://") else {
            throw EnvironmentError(variable: "MONGODB_URI", reason: "must start with mongodb:// or mongodb+srv://")
        }
        database = environment.string("MONGODB_DB", default: "scalable-shop")
        collection = environment.string("MONGODB_COLLECTION", default: "purchases")
        let names = Logger.Level.allCases.map(\.rawValue)
        logLevel = Logger.Level(rawValue: try environment.choice("LOG_LEVEL", of: names, default: "info"))!
        batchSize = try environment.integer("INGEST_BATCH_SIZE", default: 500, range: 1...10_000)
        batchWait = try environment.milliseconds("INGEST_BATCH_WAIT_MS", default: 50, range: 1...10_000)
        fetchWait = try environment.milliseconds("KAFKA_FETCH_WAIT_MAX_MS", default: 500, range: 1...10_000)
        shutdownTimeout = try environment.milliseconds("SHUTDOWN_TIMEOUT_MS", default: 25_000, range: 1000...600_000)
        idleTimeout = try ShopHTTPServer.idleTimeout(environment)
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
