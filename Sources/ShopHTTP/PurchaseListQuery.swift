public import Events
public import Hummingbird

/// The request of both purchase lists (`GET /getAllUserBuys/{username}` on cm-server,
/// `GET /buyList/{username}` on cm-api): the percent-decoded username, `limit` and `cursor`.
public struct PurchaseListQuery<Cursor: Sendable>: Sendable {
    public var username: String
    public var limit: Int
    public var cursor: Cursor?

    /// Every rule the request broke, one per field, as the contract's 400.
    public struct Invalid: Error {
        public var message: String
        public var errors: [FieldError]

        public var response: Response { .error(.badRequest, message, errors: errors) }
    }

    /// Reads the `username` path parameter and the query; `cursor` turns the `cursor` text
    /// (already within ``PurchaseListCursor``'s rule) into what the service pages with, or says
    /// why it cannot.
    public init(
        _ request: Request,
        context: some RequestContext,
        cursor decodeCursor: (String) throws(FieldError) -> Cursor
    ) throws(Invalid) {
        // The router hands the path segment over still percent-encoded.
        guard let raw = context.parameters.get("username"), let username = raw.removingPercentEncoding else {
            throw Invalid(message: "The username is not valid percent-encoding", errors: [])
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
