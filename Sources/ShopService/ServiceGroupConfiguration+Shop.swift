public import Logging
public import ServiceLifecycle

extension ServiceGroupConfiguration {
    /// Both services' lifecycle: SIGTERM or SIGINT starts a graceful shutdown (services stop in
    /// reverse order) bounded by `SHUTDOWN_TIMEOUT_MS`; what is still running then is cancelled
    /// and gets `cancellationGrace` more before the process gives up on it.
    public static func shop(
        services: [any Service], shutdownTimeout: Duration, logger: Logger
    ) -> ServiceGroupConfiguration {
        var group = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = shutdownTimeout
        group.maximumCancellationDuration = cancellationGrace
        return group
    }

    /// `services` after the span exporter, when there is one: it starts first and stops last, so
    /// that the spans of the last requests are exported on the way out.
    public static func exportingFirst(_ exporter: (any Service)?, then services: [any Service]) -> [any Service] {
        (exporter.map { [$0] } ?? []) + services
    }

    /// How long cancelled services get to return after the graceful shutdown ran out.
    public static var cancellationGrace: Duration { .seconds(5) }
}
