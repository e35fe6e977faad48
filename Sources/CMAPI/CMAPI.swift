import Foundation
import Hummingbird
import Kafka
import Logging
import Mongo
import ServiceLifecycle
import ShopHTTP
import ShopService

/// cm-api: consumes purchase events from Kafka into MongoDB and serves the purchase lists.
@main
struct CMAPI {
    static func main() async {
        let configuration = ServiceMain.configuration(of: "cm-api") { config throws(ConfigurationError) in
            try CMAPIConfiguration(config: config)
        }
        await ServiceMain.run("cm-api", logLevel: configuration.logLevel) { logger in
            try await run(configuration, logger: logger)
        }
    }

    static func run(_ configuration: CMAPIConfiguration, logger: Logger) async throws {
        let mongo = try MongoClient(uri: configuration.mongoURI, appName: "cm-api")
        let store = MongoPurchaseStore(
            collection: mongo.collection(configuration.collection, database: configuration.database), logger: logger)
        try await store.prepare()

        let consumer = try KafkaConsumer(
            configuration: configuration.consumer, topics: [configuration.topic], logger: logger)
        let deadLetters = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: configuration.kafka), logger: logger)
        let status = IngestStatus()
        var settings = PurchaseIngest.Settings()
        settings.batchSize = configuration.batchSize
        settings.batchWait = configuration.batchWait
        let ingest = PurchaseIngest(
            consumer: consumer, deadLetters: deadLetters, topic: configuration.topic, store: store,
            settings: settings, status: status, logger: logger)
        let app = Application(
            router: buildRouter(
                store: store, status: status,
                failure: {
                    consumer.fatalFailure.map { "Kafka consumer: \($0.message)" }
                        ?? deadLetters.fatalFailure.map { "dead-letter producer: \($0.message)" }
                },
                lag: { (try? await consumer.lag()) ?? [:] }),
            server: ShopHTTPServer.http1(idleTimeout: configuration.idleTimeout),
            configuration: .init(address: .hostname("0.0.0.0", port: configuration.port), serverName: "cm-api"),
            logger: logger
        )
        // Shutdown runs in reverse: the HTTP server stops, the ingest finishes its batch,
        // commits and leaves the group, then the dead-letter producer flushes.
        try await ServiceGroup(
            configuration: .shop(
                services: [deadLetters, ingest, app], shutdownTimeout: configuration.shutdownTimeout, logger: logger)
        ).run()
        await mongo.shutdown()
    }
}
