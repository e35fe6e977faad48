public import Configuration
public import Hummingbird
public import HummingbirdCore
public import Logging
import NIOCore
public import ServiceLifecycle
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

    /// The application a service runs: `router`'s routes on HTTP/1.1 with the idle timeout,
    /// each request read whole before it is routed and answered on ``WholeRequestChannel``.
    public static func application<Context>(
        router: Router<Context>, idleTimeout: Duration, configuration: ApplicationConfiguration,
        services: [any Service] = [], logger: Logger? = nil
    ) -> Application<RouterResponder<Context>> {
        let responder = router.buildResponder()
        return Application(
            responder: responder,
            server: http1(responder: responder, idleTimeout: idleTimeout, serverName: configuration.serverName),
            configuration: configuration, services: services, logger: logger)
    }

    /// The server of ``application(router:idleTimeout:configuration:services:logger:)``.
    /// `responder` answers the requests itself: the responder Hummingbird's `Application` hands a
    /// server wraps it for a connection's `NIOAsyncChannel`, which ``WholeRequestChannel`` does
    /// without (it adds the `Date` and `Server` headers that wrapping adds).
    public static func http1<Responder: HTTPResponder>(
        responder: Responder, idleTimeout: Duration, serverName: String?
    ) -> HTTPServerBuilder where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        HTTPServerBuilder { _ in
            WholeRequestChannel(
                responder: responder, idleTimeout: TimeAmount(idleTimeout), maximumBodyBytes: maximumBodyBytes,
                serverName: serverName)
        }
    }
}
