import Events
import Foundation
import Logging

/// cm-server, the customer-facing API. This first version validates its configuration and
/// reports it; the HTTP API that produces purchases arrives with its own issue.
@main
struct CMServer {
    static func main() {
        let configuration: CMServerConfiguration
        do {
            configuration = try CMServerConfiguration(environment: Environment(ProcessInfo.processInfo.environment))
        } catch {
            FileHandle.standardError.write(Data("cm-server: \(error)\n".utf8))
            exit(78)  // EX_CONFIG
        }
        var logger = Logger(label: "cm-server")
        logger.logLevel = configuration.logLevel
        logger.info(
            "configuration valid",
            metadata: [
                "port": "\(configuration.port)",
                "kafka.brokers": "\(configuration.kafka.bootstrapServers.joined(separator: ","))",
                "kafka.topic": "\(configuration.topic)",
                "cm-api": "\(configuration.cmAPIHost)",
            ]
        )
    }
}
