import Hummingbird
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The limit for cm-server's routes on this machine (issue 20): Hummingbird as shipped serving one
/// route with a constant answer, no middleware, its own HTTP/1.1 channel with cm-server's idle
/// timeout and address form (cm-server's channel, ShopHTTP.WholeRequestChannel, reads each request
/// whole; docs/BENCHMARKS.md). `make bench` measures `GET /healthz` here as it measures
/// cm-server's routes; the difference is what cm-server's router, middleware and handlers add.
///
///     PORT=8080 http-floor
@main
struct HTTPFloor {
    static func main() async throws {
        guard let port = getenv("PORT").flatMap({ Int(String(cString: $0)) }) else {
            print("usage: PORT=8080 http-floor")
            return
        }
        var logger = Logger(label: "http-floor")
        logger.logLevel = .warning
        let router = Router()
        router.get("healthz") { _, _ in "Success" }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(75))),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "http-floor"),
            logger: logger
        )
        try await app.runService()
    }
}
