import HTTPTypes
public import Hummingbird

/// The answer to a request no route takes: the contract's JSON error instead of Hummingbird's
/// empty 404, and 405 with `Allow` (RFC 9110) when the path exists but not with that method.
///
/// Add it to the router after every route: Hummingbird applies a middleware only to the routes
/// added after it, and to the not-found responder, so this one sees nothing else.
public struct UnroutedRequestMiddleware<Context: RequestContext>: RouterMiddleware {
    private let routes: [(path: RouterPath, method: HTTPRequest.Method)]

    /// - Parameter routes: the router's routes (`router.routes`, once they are all added).
    public init(routes: [Router<Context>.RouteDescription]) {
        self.routes = routes.map { ($0.path, $0.method) }
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let segments = request.uri.path.split(separator: "/")
        var allowed = routes.filter { route in
            route.path.components.count == segments.count
                && zip(route.path.components, segments).allSatisfy { element, segment in element ~= segment }
        }.map(\.method.rawValue)
        guard !allowed.isEmpty else {
            return .error(.notFound, "There is no endpoint at this path; GET / lists them")
        }
        allowed = Array(Set(allowed)).sorted()
        var response = Response.error(
            .methodNotAllowed,
            "\(request.method.rawValue) is not allowed here; use \(allowed.joined(separator: " or "))")
        response.headers[.allow] = allowed.joined(separator: ", ")
        return response
    }
}
