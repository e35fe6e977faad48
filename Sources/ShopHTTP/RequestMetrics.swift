import Dispatch
import HTTPTypes
public import Hummingbird
import Metrics
import Synchronization

/// Records each request's metrics (the names and labels of Hummingbird's `MetricsMiddleware`,
/// which ShopMetrics turns into `http_requests_total`, `http_request_errors_total`,
/// `http_request_duration_seconds` and `http_requests_in_flight`) when the route's answer is
/// ready, and leaves the answer's body as it is.
///
/// Hummingbird's `MetricsMiddleware` records once the body is written, by wrapping every body in a
/// closure (`withPostWriteClosure`). A wrapped body loses the server's one batched write of head,
/// body and end (`ResponseWriter.write(response:body:)`): the head, the body and the end then go
/// to the event loop one by one, as two `write` system calls and three hops per answer. Every
/// answer of these services is one buffer written at once, so the time to the answer is the
/// time to the write, less the write itself (issue 31 measured the difference; see
/// docs/BENCHMARKS.md).
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let metrics = RequestMetrics()

    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let inFlight = metrics.inFlight(request.method)
        inFlight.increment()
        defer { inFlight.decrement() }
        do {
            let response = try await next(request, context)
            let answered = metrics.answered(
                route: context.endpointPath ?? "Unknown", method: request.method, status: response.status)
            answered.requests.increment()
            answered.duration.recordNanoseconds(DispatchTime.now().uptimeNanoseconds - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let answered = metrics.answered(
                route: context.endpointPath ?? "NotFound", method: request.method, status: status)
            answered.requests.increment()
            answered.errors.increment()
            throw error
        }
    }
}

/// The metrics of each method (requests in flight) and of each route, method and status (requests,
/// errors, durations), made on first use and kept, so that a request looks them up instead of
/// asking the metrics factory.
private final class RequestMetrics: Sendable {
    struct Answered: Sendable {
        let requests: Counter
        let errors: Counter
        let duration: Timer
    }

    private struct AnsweredKey: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: HTTPResponse.Status
    }

    private let methods = Mutex<[HTTPRequest.Method: Meter]>([:])
    private let answers = Mutex<[AnsweredKey: Answered]>([:])

    func inFlight(_ method: HTTPRequest.Method) -> Meter {
        methods.withLock { methods in
            if let meter = methods[method] { return meter }
            let meter = Meter(
                label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)])
            methods[method] = meter
            return meter
        }
    }

    func answered(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status) -> Answered {
        let key = AnsweredKey(route: route, method: method, status: status)
        return answers.withLock { answers in
            if let answered = answers[key] { return answered }
            let dimensions = [
                ("http.route", route), ("http.request.method", method.rawValue),
                ("http.response.status_code", String(status.code)),
            ]
            let answered = Answered(
                requests: Counter(label: "hb.requests", dimensions: dimensions),
                errors: Counter(
                    label: "hb.request.errors",
                    dimensions: [
                        ("http.route", route), ("http.request.method", method.rawValue),
                        ("error.type", String(status.code)),
                    ]),
                duration: Timer(
                    label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds)
            )
            answers[key] = answered
            return answered
        }
    }
}
