import Events
import Foundation
import Hummingbird
import Kafka
import Logging
import Mongo
import ServiceLifecycle
import ShopHTTP

/// cm-api: consumes purchase events from Kafka into MongoDB and serves the purchase lists.
@main
struct CMAPI {
    static func main() async {
        let configuration: CMAPIConfiguration
        do {
            configuration = try CMAPIConfiguration(environment: Environment(ProcessInfo.processInfo.environment))
        } catch {
            FileHandle.standardError.write(Data("cm-api: \(error)\n".utf8))
            exit(78)  // EX_CONFIG
        }
        var logger = Logger(label: "cm-api")
        logger.logLevel = configuration.logLevel
        do {
            try await run(configuration, logger: logger)
        } catch {
            logger.critical("cm-api stopped on an error", metadata: ["error": "\(error)"])
            exit(1)
        }
        logger.info("cm-api stopped")
    }

    static func run(_ configuration: CMAPIConfiguration, logger: Logger) async throws {
        let mongo = try MongoClient(uri: configuration.mongoURI, appName: "cm-api")
        let collection = mongo.collection(configuration.collection, database: configuration.database)
        try await createIndexes(collection, logger: logger)

        let consumer = try KafkaConsumer(
            configuration: configuration.consumer, topics: [configuration.topic], logger: logger)
        let deadLetters = try KafkaProducer(
            configuration: KafkaProducerConfiguration(kafka: configuration.kafka), logger: logger)
        let status = IngestStatus()
        var settings = PurchaseIngest.Settings()
        settings.batchSize = configuration.batchSize
        settings.batchWait = configuration.batchWait
        let ingest = PurchaseIngest(
            consumer: consumer, deadLetters: deadLetters, topic: configuration.topic, collection: collection,
            settings: settings, status: status, logger: logger)
        let app = Application(
            router: buildRouter(
                collection: collection, status: status, ping: MongoPing(client: mongo),
                lag: { (try? await consumer.lag()) ?? [:] }),
            server: ShopHTTPServer.http1(idleTimeout: configuration.idleTimeout),
            configuration: .init(address: .hostname("0.0.0.0", port: configuration.port), serverName: "cm-api"),
            logger: logger
        )
        // Shutdown runs in reverse: the HTTP server stops, the ingest finishes its batch,
        // commits and leaves the group, then the dead-letter producer flushes.
        var group = ServiceGroupConfiguration(
            services: [deadLetters, ingest, app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        group.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: group).run()
        await mongo.shutdown()
    }

    /// The contract's indexes; MongoDB may still be starting, so retry for a minute.
    static func createIndexes(_ collection: MongoCollection, logger: Logger) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while true {
            let failure: MongoError
            do {
                try await collection.createIndexes(MongoCollection.purchaseIndexes)
                return
            } catch {
                failure = error
            }
            guard failure.isTransient, ContinuousClock.now < deadline else { throw failure }
            logger.warning("MongoDB not ready for the indexes; retrying", metadata: ["error": "\(failure)"])
            try await Task.sleep(for: .seconds(2))
        }
    }
}
