import Events
import Foundation
import Logging
import Mongo

/// cm-api, the ingest service and purchase list API. This first version validates its
/// configuration and reports it; ingest and the HTTP API arrive with their own issue.
@main
struct CMAPI {
    static func main() {
        let configuration: CMAPIConfiguration
        do {
            configuration = try CMAPIConfiguration(environment: Environment(ProcessInfo.processInfo.environment))
        } catch {
            FileHandle.standardError.write(Data("cm-api: \(error)\n".utf8))
            exit(78)  // EX_CONFIG
        }
        var logger = Logger(label: "cm-api")
        logger.logLevel = configuration.logLevel
        logger.info(
            "configuration valid",
            metadata: [
                "port": "\(configuration.port)",
                "kafka.brokers": "\(configuration.kafka.bootstrapServers.joined(separator: ","))",
                "kafka.topic": "\(configuration.topic)",
                "kafka.group": "\(configuration.groupID)",
                "mongodb.database": "\(configuration.database)",
                "mongodb.collection": "\(configuration.collection)",
                "libmongoc": "\(MongoLibrary.version)",
            ]
        )
    }
}
