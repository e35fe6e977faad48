public import Hummingbird
import Metrics
import NIOCore

/// The routes both services have besides their API.
public enum ServiceRoutes {
    /// `GET /healthz`: liveness. No dependency is checked (an outage must not restart pods);
    /// 503 only with `failure`'s answer: something inside the process broke for good (a Kafka
    /// client's fatal error), so that the orchestrator replaces it.
    /// `GET /readyz`: 200 `Ready`, or 503 with `failure`'s or `unavailableReason`'s answer.
    /// `GET /openapi.yaml`: the service's OpenAPI document.
    public static func add(
        to router: Router<some RequestContext>,
        openAPIDocument: [UInt8],
        failure: @escaping @Sendable () -> String? = { nil },
        unavailableReason: @escaping @Sendable () async -> String?
    ) {
        router.get("healthz") { _, _ -> Response in
            if let failure = failure() {
                return .error(.serviceUnavailable, "Broken for good, restart the process: \(failure)")
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "Success")))
        }
        router.get("readyz") { _, _ -> Response in
            if let reason = failure() {
                return .error(.serviceUnavailable, reason)
            }
            if let reason = await unavailableReason() {
                return .error(.serviceUnavailable, reason)
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "Ready")))
        }
        router.get("openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml"],
                body: .init(byteBuffer: ByteBuffer(bytes: openAPIDocument)))
        }
    }

    /// Records what `/readyz` and `/healthz` would answer as gauges, for the alerts:
    /// `service_ready{shop_service}` (1 when ready) and `service_broken{shop_service}` (1 when broken
    /// for good: liveness fails). The label names the service whatever labels the scrape adds (pod
    /// annotations or a ServiceMonitor). Called when `/metrics` is scraped.
    public static func recordHealth(
        service: String, failure: @Sendable () -> String?, unavailableReason: @Sendable () async -> String?
    ) async {
        let broken = failure() != nil
        let ready = !broken ? await unavailableReason() == nil : false
        Gauge(label: "service_ready", dimensions: [("shop_service", service)]).record(ready ? 1 : 0)
        Gauge(label: "service_broken", dimensions: [("shop_service", service)]).record(broken ? 1 : 0)
    }
}
