public import Hummingbird
public import PurchaseDomain

/// The request of both purchase lists (`GET /getAllUserBuys/{username}` on cm-server,
/// `GET /buyList/{username}` on cm-api): the percent-decoded username, `limit` and `cursor`.
public struct PurchaseListQuery<Cursor: Sendable>: Sendable {
    public var username: String
    public var limit: Int
    public var cursor: Cursor?

    /// Every rule the request broke, one per field: the contract's 400.
    public struct Invalid: Error {
        public var message: String
        public var errors: [FieldError]
    }

    /// Reads the `username` path parameter and the query; `cursor` turns the `cursor` text
    /// (already within ``PurchaseListCursor``'s rule) into what the service pages with, or says
    /// why it cannot.
    public init(
        _ request: Request,
        context: some RequestContext,
        cursor decodeCursor: (String) throws(FieldError) -> Cursor
    ) throws(Invalid) {
        // The router hands the path segments over still percent-encoded. A username with a `/`
        // arrives as more segments when a proxy decoded its %2F (ingress-nginx's rewrite does):
        // the catch-all route's rest joins back into it.
        let invalid = Invalid(message: "The username is not valid percent-encoding", errors: [])
        guard let first = context.parameters.get("username")?.removingPercentEncoding else { throw invalid }
        var username = first
        for segment in context.parameters.getCatchAll() {
            guard let text = segment.removingPercentEncoding else { throw invalid }
            username += "/" + text
        }
        var errors: [FieldError] = []
        if let violation = Purchase.nameViolation(username) {
            errors.append(FieldError(field: "username", reason: violation))
        }
        var limit = PurchaseListLimit.default
        do throws(FieldError) {
            limit = try PurchaseListLimit.parse(request.uri.queryParameters["limit"].map(String.init))
        } catch {
            errors.append(error)
        }
        var cursor: Cursor?
        if let text = request.uri.queryParameters["cursor"] {
            do throws(FieldError) {
                cursor = try decodeCursor(try PurchaseListCursor.check(String(text)))
            } catch {
                errors.append(error)
            }
        }
        guard errors.isEmpty else { throw Invalid(message: "Invalid query", errors: errors) }
        self.username = username
        self.limit = limit
        self.cursor = cursor
    }
}
