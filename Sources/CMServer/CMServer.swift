import AsyncHTTPClient
import Hummingbird
import ServiceLifecycle
import ShopService

/// cm-server, the customer-facing API: `POST /buy` produces purchases to Kafka.
@main
struct CMServer {
    static func main() async {
        let configuration = ServiceMain.configuration(of: "cm-server") { config throws(ConfigurationError) in
            try CMServerConfiguration(config: config)
        }
        await ServiceMain.run("cm-server", logLevel: configuration.logLevel) { logger in
            try await HTTPClient.withHTTPClient(configuration: PurchaseListClient.httpConfiguration) { http in
                let app = try buildApplication(configuration: configuration, http: http, logger: logger)
                // SIGTERM/SIGINT: the server stops accepting and finishes the requests in flight
                // (each waits at most for its delivery), then the producer flushes; all within
                // SHUTDOWN_TIMEOUT_MS, after which what is left is cancelled.
                try await ServiceGroup(
                    configuration: .shop(
                        services: [app], shutdownTimeout: configuration.shutdownTimeout, logger: logger)
                ).run()
            }
        }
    }
}
