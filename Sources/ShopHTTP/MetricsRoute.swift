public import Hummingbird
public import Prometheus
public import ShopService

extension ShopMetrics {
    /// `GET /metrics` in Prometheus text format; `beforeScrape` refreshes gauges that are read
    /// rather than pushed (queue depths, say).
    public static func addRoute(
        to router: Router<some RequestContext>,
        registry: PrometheusCollectorRegistry,
        beforeScrape: @escaping @Sendable () async -> Void = {}
    ) {
        router.get("metrics") { _, _ -> Response in
            await beforeScrape()
            var bytes: [UInt8] = []
            bytes.reserveCapacity(16 * 1024)
            registry.emit(into: &bytes)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes))
            )
        }
    }
}
