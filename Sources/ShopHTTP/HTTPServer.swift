public import Configuration
public import HummingbirdCore
import NIOCore
public import ShopService

/// The HTTP/1.1 server both services run.
public enum ShopHTTPServer {
    /// `HTTP_IDLE_TIMEOUT_MS` (default 75000): a connection that sends nothing for this long is
    /// closed, whether it is idle between requests or stalled in the middle of one (a body
    /// shorter than its Content-Length would otherwise hold the connection forever). Longer
    /// than ingress-nginx's upstream keep-alive (60 s), so the proxy, not the service, closes
    /// idle pooled connections and never reuses one the service is closing.
    public static func idleTimeout(_ config: ConfigReader) throws(ConfigurationError) -> Duration {
        try config.milliseconds("http.idle.timeout.ms", default: 75_000, range: 1000...3_600_000)
    }

    /// The longest request body either service reads (the routes' own limits are lower: a
    /// purchase is at most 16 KiB).
    public static let maximumBodyBytes = 64 * 1024

    /// HTTP/1.1 with the idle timeout, each request read whole before it is routed
    /// (``WholeRequestChannel``).
    public static func http1(idleTimeout: Duration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            WholeRequestChannel(
                responder: responder, idleTimeout: TimeAmount(idleTimeout), maximumBodyBytes: maximumBodyBytes)
        }
    }
}
