public import Configuration
import Crypto
public import HTTPTypes
public import Hummingbird
import ShopHTTP
public import ShopService

/// The credential cm-server presents to cm-api in `Shop-Service-Token` (`CM_API_SERVICE_TOKEN`,
/// from the chart's Secret): cm-api answers nobody else.
public struct ServiceToken: Sendable {
    /// The smallest token accepted, as for an HS256 secret.
    public static let minimumBytes = 32
    public static let header = HTTPField.Name("Shop-Service-Token")!

    public let value: String
    private let digest: SHA256.Digest

    public init?(_ value: String) {
        guard value.utf8.count >= Self.minimumBytes else { return nil }
        self.value = value
        digest = SHA256.hash(data: Array(value.utf8))
    }

    /// Compares digests, so the time taken says nothing about how much of a guess was right.
    public func matches(_ presented: String?) -> Bool {
        guard let presented else { return false }
        return SHA256.hash(data: Array(presented.utf8)) == digest
    }
}

/// cm-api's gate: requests without cm-server's service credential get a 401 and nothing else.
public struct ServiceTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: ServiceToken

    public init(token: ServiceToken) {
        self.token = token
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard token.matches(request.headers[ServiceToken.header]) else {
            var response = Response.error(
                .unauthorized, "cm-api answers cm-server only: the Shop-Service-Token header is missing or wrong")
            response.headers[.wwwAuthenticate] = #"Shop-Service-Token realm="cm-api""#
            return response
        }
        return try await next(request, context)
    }
}

extension ServiceToken {
    /// `CM_API_SERVICE_TOKEN`: `nil` when unset; at least ``minimumBytes`` when set.
    public static func read(_ config: ConfigReader) throws(ConfigurationError) -> ServiceToken? {
        guard let text = config.text("cm.api.service.token", isSecret: true) else { return nil }
        guard let token = ServiceToken(text) else {
            throw config.invalid("cm.api.service.token", "must be at least \(minimumBytes) bytes")
        }
        return token
    }
}
