import Configuration
@_spi(Testing) import Kafka
import PurchaseDomain
import PurchaseWire
import ShopKafka
import ShopService
import Testing

@testable import CMAPI

@Suite struct CMAPIConfigurationTests {
    @Test func contractDefaults() throws {
        let configuration = try CMAPIConfiguration(
            config: .shop(environment: ["KAFKA_BROKERS": "kafka:9092", "MONGODB_URI": "mongodb://mongo:27017"])
        )
        #expect(configuration.port == 3000)
        #expect(configuration.topic == "scalable-shop-purchases")
        #expect(configuration.groupID == "scalable-shop")
        #expect(configuration.mongoURI == "mongodb://mongo:27017")
        #expect(configuration.database == "scalable-shop")
        #expect(configuration.collection == "purchases")
        #expect(configuration.batchSize == 500)
        #expect(configuration.batchWait == .milliseconds(50))
        #expect(configuration.fetchWait == .milliseconds(500))
        #expect(configuration.shutdownTimeout == .seconds(25))
        #expect(configuration.idleTimeout == .seconds(75))
        #expect(configuration.readTimeout == .seconds(2))
    }

    @Test func everyVariableIsRead() throws {
        let configuration = try CMAPIConfiguration(
            config: .shop(environment: [
                "PORT": "9000", "KAFKA_BROKERS": "k:1", "KAFKA_TOPIC": "t", "KAFKA_GROUPID": "g",
                "MONGODB_URI": "mongodb+srv://cluster0.example.net/?w=majority", "MONGODB_DB": "d",
                "MONGODB_COLLECTION": "c",
                "LOG_LEVEL": "warning", "INGEST_BATCH_SIZE": "200", "INGEST_BATCH_WAIT_MS": "20",
                "SHUTDOWN_TIMEOUT_MS": "5000", "KAFKA_FETCH_WAIT_MAX_MS": "10", "HTTP_IDLE_TIMEOUT_MS": "2000",
                "MONGODB_READ_TIMEOUT_MS": "1500",
            ])
        )
        #expect(configuration.port == 9000)
        #expect(configuration.groupID == "g")
        #expect(configuration.database == "d")
        #expect(configuration.collection == "c")
        #expect(configuration.logLevel == .warning)
        #expect(configuration.batchSize == 200)
        #expect(configuration.batchWait == .milliseconds(20))
        #expect(configuration.fetchWait == .milliseconds(10))
        #expect(configuration.shutdownTimeout == .seconds(5))
        #expect(configuration.idleTimeout == .seconds(2))
        #expect(configuration.readTimeout == .milliseconds(1500))
    }

    /// What the ingest's consumer is given, down to librdkafka's property names.
    @Test func theConsumerStartsNewGroupsAtTheEarliestOffsetWithTheConfiguredFetchWait() throws {
        let defaults = try CMAPIConfiguration(
            config: .shop(environment: ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m", "KAFKA_GROUPID": "g"])
        ).consumer
        #expect(defaults.librdkafkaProperties["group.id"] == "g")
        #expect(defaults.librdkafkaProperties["auto.offset.reset"] == "earliest")
        #expect(defaults.librdkafkaProperties["fetch.wait.max.ms"] == "500")
        let lowered = try CMAPIConfiguration(
            config: .shop(environment: [
                "KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m", "KAFKA_FETCH_WAIT_MAX_MS": "10",
            ])
        ).consumer
        #expect(lowered.librdkafkaProperties["fetch.wait.max.ms"] == "10")
    }

    @Test(
        arguments: [
            (["KAFKA_BROKERS": "k:1"], "MONGODB_URI is required: a mongodb:// or mongodb+srv:// connection string"),
            (
                ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m", "INGEST_BATCH_SIZE": "0"],
                "INGEST_BATCH_SIZE must be a whole number from 1 to 10000, got \"0\""
            ),
            (
                ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "postgres://x"],
                "MONGODB_URI must start with mongodb:// or mongodb+srv://"
            ),
            (["MONGODB_URI": "mongodb://m"], "KAFKA_BROKERS is required: comma-separated host:port list"),
            (
                ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m", "KAFKA_FETCH_WAIT_MAX_MS": "0"],
                "KAFKA_FETCH_WAIT_MAX_MS must be a number of milliseconds from 1 to 10000, got \"0\""
            ),
            (
                ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m", "MONGODB_READ_TIMEOUT_MS": "0"],
                "MONGODB_READ_TIMEOUT_MS must be a number of milliseconds from 100 to 60000, got \"0\""
            ),
            // A hung MongoDB must not hold a write past the consumer's max.poll.interval.ms (300 s).
            (
                ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m/?socketTimeoutMS=0"],
                "MONGODB_URI sets socketTimeoutMS to 0 s: it must be above 0 and at most a quarter of the consumer's "
                    + "max.poll.interval.ms (300 s), or a hung MongoDB gets cm-api evicted from its consumer group"
            ),
            (
                ["KAFKA_BROKERS": "k:1", "MONGODB_URI": "mongodb://m/?serverSelectionTimeoutMS=100000"],
                "MONGODB_URI sets serverSelectionTimeoutMS to 100 s: it must be above 0 and at most a quarter of the "
                    + "consumer's max.poll.interval.ms (300 s), or a hung MongoDB gets cm-api evicted from its consumer group"
            ),
        ] as [([String: String], String)])
    func aMissingOrMalformedValueIsOneLineNamingTheVariable(_ values: [String: String], message: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try CMAPIConfiguration(config: .shop(environment: values))
        }
        #expect(error?.description == message)
    }
}
