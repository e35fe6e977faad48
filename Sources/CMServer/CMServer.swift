import AsyncHTTPClient
import Events
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

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
        var http = HTTPClient.Configuration()
        http.timeout = .init(connect: .seconds(2), read: .seconds(30))
        http.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        do {
            try await HTTPClient.withHTTPClient(configuration: http) { http in
                let app = try buildApplication(configuration: configuration, http: http, logger: logger)
                // SIGTERM/SIGINT: the server stops accepting and finishes the requests in flight
                // (each waits at most for its delivery), then the producer flushes; all within
                // SHUTDOWN_TIMEOUT_MS, after which what is left is cancelled.
                var group = ServiceGroupConfiguration(
                    services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
                group.maximumGracefulShutdownDuration = configuration.shutdownTimeout
                group.maximumCancellationDuration = .seconds(5)
                try await ServiceGroup(configuration: group).run()
            }
        } catch {
            logger.critical("cm-server stopped on an error", metadata: ["error": "\(error)"])
            exit(1)
        }
        logger.info("cm-server stopped")
    }
}
