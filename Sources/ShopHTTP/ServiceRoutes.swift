public import Hummingbird
import NIOCore

/// The routes both services have besides their API.
public enum ServiceRoutes {
    /// `GET /healthz`: liveness only, no dependency checked (an outage must not restart pods).
    /// `GET /readyz`: 200 `Ready`, or 503 with `unavailableReason`'s answer.
    /// `GET /openapi.yaml`: the service's OpenAPI document.
    public static func add(
        to router: Router<some RequestContext>,
        openAPIDocument: [UInt8],
        unavailableReason: @escaping @Sendable () async -> String?
    ) {
        router.get("healthz") { _, _ in "Success" }
        router.get("readyz") { _, _ -> Response in
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
}
