import Metrics
public import Prometheus

/// Prometheus for swift-metrics: one registry per process (ShopHTTP exposes it at `GET /metrics`).
public enum ShopMetrics {
    /// Bootstraps swift-metrics with Prometheus once per process and returns the registry every
    /// metric of the process lands in. Later calls return the same registry.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        registry
    }

    private static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(factory(registry: registry))
        return registry
    }()

    /// A factory that gives Hummingbird's OpenTelemetry-style names Prometheus names:
    /// `http_requests_total{route,method,status}`, `http_request_duration_seconds` (histogram),
    /// `http_requests_in_flight`; any other dotted name has its dots turned into underscores.
    public static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        factory.nameAndLabelSanitizer = { name, labels in
            let renamedLabels = labels.map { key, value in (labelNames[key] ?? key.replacing(".", with: "_"), value) }
            return (metricNames[name] ?? name.replacing(".", with: "_"), renamedLabels)
        }
        return factory
    }

    private static let metricNames = [
        "hb.requests": "http_requests_total",
        "hb.request.errors": "http_request_errors_total",
        "http.server.request.duration": "http_request_duration_seconds",
        "http.server.active_requests": "http_requests_in_flight",
    ]

    private static let labelNames = [
        "http.route": "route",
        "http.request.method": "method",
        "http.response.status_code": "status",
    ]
}
