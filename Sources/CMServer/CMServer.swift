import Events
import Foundation
import Hummingbird
import Logging

/// cm-server, the customer-facing API: `POST /buy` produces purchases to Kafka.
@main
struct CMServer {
    static func main() async throws {
        let configuration: CMServerConfiguration
        do {
            configuration = try CMServerConfiguration(
                environment: Events.Environment(ProcessInfo.processInfo.environment))
        } catch {
            FileHandle.standardError.write(Data("cm-server: \(error)\n".utf8))
            exit(78)  // EX_CONFIG
        }
        var logger = Logger(label: "cm-server")
        logger.logLevel = configuration.logLevel
        let app = try buildApplication(configuration: configuration, logger: logger)
        try await app.runService()
    }
}
