import ArgumentParser
import Configuration
import Foundation
import Hummingbird
import Kafka
import Logging
import Mongo
import PurchaseDomain
import PurchaseWire
import ServiceLifecycle
import ShopAuth
import ShopHTTP
import ShopKafka
import ShopService

/// cm-api: consumes purchase events from Kafka into MongoDB and serves the purchase lists
/// (`cm-api`, or `cm-api serve`); `cm-api dlq` lists, shows and redrives dead letters.
@main
struct CMAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cm-api",
        abstract: "Stores purchase events from Kafka in MongoDB and serves the purchase lists.",
        discussion: "Configured by environment variables only (docs/CONTRACT.md).",
        subcommands: [Serve.self, DeadLetterCommand.self, KafkaACLs.self],
        defaultSubcommand: Serve.self)
}

/// The service (what the container runs).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs the service: the ingest and the HTTP API (the default).")

    func run() async throws {
        let (configuration, auth) = await ServiceMain.configuration(of: "cm-api") { config throws(ConfigurationError) in
            let configuration = try CMAPIConfiguration(config: config)
            return (
                configuration,
                try await RouteAuth(settings: configuration.auth, serviceToken: configuration.serviceToken)
            )
        }
        let observability = await ServiceMain.observability(of: "cm-api")
        await ServiceMain.run("cm-api", logLevel: configuration.logLevel) { logger in
            try await Self.run(configuration, auth: auth, observability: observability, logger: logger)
        }
    }

    static func run(
        _ configuration: CMAPIConfiguration, auth: RouteAuth, observability: (any Service)? = nil, logger: Logger
    ) async throws {
        // Two pools: the ingest's writes and the reads never wait for each other's connections.
        // The reads' queue is bounded in length and time: a read that would answer after
        // cm-server gave up is refused at once instead.
        let timeouts = CMAPIConfiguration.mongoTimeouts
        let writes = try MongoClient(uri: configuration.mongoURI, appName: "cm-api", connections: 2, timeouts: timeouts)
        let reads = try MongoClient(
            uri: configuration.mongoURI, appName: "cm-api-reads", connections: 16, timeouts: timeouts,
            queue: MongoClient.Queue(maximumWaiting: 64, maximumWait: configuration.readTimeout))
        let store = MongoPurchaseStore(
            collection: writes.collection(configuration.collection, database: configuration.database),
            reads: reads.collection(configuration.collection, database: configuration.database),
            readTimeout: configuration.readTimeout, logger: logger)
        try await store.prepare()
        let app = try buildApplication(configuration: configuration, auth: auth, store: store, logger: logger)
        // SIGTERM/SIGINT: the HTTP server stops, the ingest finishes its batch, commits and leaves
        // the group, then the dead-letter producer flushes; all within SHUTDOWN_TIMEOUT_MS.
        try await ServiceGroup(
            configuration: .shop(
                services: ServiceGroupConfiguration.exportingFirst(observability, then: [app]),
                shutdownTimeout: configuration.shutdownTimeout, logger: logger)
        ).run()
        await reads.shutdown()
        await writes.shutdown()
    }
}

/// `cm-api kafka-acls`: the Kafka ACLs the service's identity needs, or with `--dead-letter-tool`
/// those of the operator's identity for `cm-api dlq`, as Strimzi's `KafkaUser` lists them.
struct KafkaACLs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-acls",
        abstract: "Prints the Kafka ACLs cm-api (or the dead-letter tool) needs, as a KafkaUser's acls.",
        discussion: "Reads KAFKA_TOPIC and KAFKA_GROUPID as the service does.")

    @Flag(help: "The ACLs of `cm-api dlq` (an operator's identity) instead of the service's.")
    var deadLetterTool = false

    func run() async throws {
        let deadLetterTool = self.deadLetterTool
        let access = await ServiceMain.configuration(of: "cm-api kafka-acls") { config throws(ConfigurationError) in
            let topic = CMAPIConfiguration.topic(config)
            return deadLetterTool
                ? DeadLetterTool.kafkaAccess(topic: topic)
                : kafkaAccess(topic: topic, group: CMAPIConfiguration.groupID(config))
        }
        print(access.strimziACLs)
    }
}
