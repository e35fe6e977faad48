public import HTTPTypes
public import Hummingbird
import ShopService
import Tracing

extension HTTPField.Name {
    /// W3C Trace Context Level 2's response header: the trace and span the server answered in, so
    /// that a customer's support ticket can name the trace of their request.
    public static let traceresponse = Self("traceresponse")!
}

/// A SERVER span per request (Hummingbird's `TracingMiddleware`: the incoming `traceparent` and
/// `tracestate` honoured, a new trace without them), answered with a `traceresponse` header. The
/// probes and the metrics scrape are not traced: they would bury the requests in spans.
public struct RequestTracingMiddleware<Context: RequestContext>: RouterMiddleware {
    private let tracing = TracingMiddleware<Context>()
    private let untraced: Set<String> = ["/healthz", "/readyz", "/metrics"]

    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard !untraced.contains(request.uri.path) else { return try await next(request, context) }
        return try await tracing.handle(request, context: context) { request, context in
            var response = try await next(request, context)
            if let current = ServiceContext.current, let traceparent = ShopTracing.traceparent(of: current) {
                response.headers[.traceresponse] = traceparent
            }
            return response
        }
    }
}

extension Router {
    /// Traces requests (``RequestTracingMiddleware``) when the process traces: the first
    /// middleware, so that the span holds everything else a request does.
    public func addRequestTracing() {
        if ShopTracing.isEnabled { add(middleware: RequestTracingMiddleware()) }
    }
}
