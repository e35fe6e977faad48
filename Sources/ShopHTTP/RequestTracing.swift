public import HTTPTypes
public import Hummingbird
public import ShopService
import Tracing

extension HTTPField.Name {
    /// W3C Trace Context Level 2's response header: the trace and span the server answered in, so
    /// that a customer's support ticket can name the trace of their request.
    public static let traceresponse = Self("traceresponse")!
}

/// A SERVER span per traced request (Hummingbird's `TracingMiddleware`), answered with a
/// `traceresponse` header. Which requests are traced is decided here, before anything is made: a
/// request with a `traceparent` follows its caller's decision (with a `parentbased_*` sampler); one
/// without starts a new trace only where `startsTraces` (cm-server, the edge; cm-api's requests
/// come from cm-server, traced as part of its trace) and only if the head sampler keeps it. A
/// request not traced goes straight on: no span, no context, no header. The probes and the metrics
/// scrape are never traced.
public struct RequestTracingMiddleware<Context: RequestContext>: RouterMiddleware {
    // Inlinable, so that each service specializes it for its request context: unspecialized,
    // the generic middleware cost a request that is not traced some 4,000 instructions of
    // runtime metadata lookups (callgrind, release build).
    @usableFromInline let tracing = TracingMiddleware<Context>()
    @usableFromInline let untraced: Set<String> = ["/healthz", "/readyz", "/metrics"]
    @usableFromInline let startsTraces: Bool
    @usableFromInline let sampler: HeadSampler

    public init(startsTraces: Bool, sampler: HeadSampler = ShopTracing.sampler) {
        self.startsTraces = startsTraces
        self.sampler = sampler
    }

    @inlinable
    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // The decision first: a request that is not traced pays a header lookup and no more.
        let continuesCaller = request.headers.contains(.traceparent) && (sampler.followsParent || !startsTraces)
        guard continuesCaller || (startsTraces && sampler.keepsNewTrace()),
            !untraced.contains(request.uri.path)
        else { return try await next(request, context) }
        return try await traced(request, context: context, next: next, newTrace: !continuesCaller)
    }

    /// The request in a SERVER span; `newTrace`: a new trace this middleware decided to keep,
    /// which the tracer must not decide again.
    @usableFromInline
    func traced(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response, newTrace: Bool
    ) async throws -> Response {
        guard !newTrace else {
            return try await ServiceContext.$current.withValue(HeadSampledTracer<NoOpTracer>.decided) {
                try await traced(request, context: context, next: next, newTrace: false)
            }
        }
        return try await tracing.handle(request, context: context) { request, context in
            var response = try await next(request, context)
            if let current = ServiceContext.current, let traceparent = ShopTracing.traceparent(of: current) {
                response.headers[.traceresponse] = traceparent
            }
            return response
        }
    }
}

extension HTTPField.Name {
    /// W3C Trace Context's request header.
    @usableFromInline static let traceparent = Self("traceparent")!
}

extension Router {
    /// Traces requests (``RequestTracingMiddleware``) when the process traces: the first
    /// middleware, so that the span holds everything else a request does. `startsTraces`: whether
    /// a request without a `traceparent` may start a trace (the edge).
    public func addRequestTracing(startsTraces: Bool) {
        if ShopTracing.isEnabled { add(middleware: RequestTracingMiddleware(startsTraces: startsTraces)) }
    }
}
