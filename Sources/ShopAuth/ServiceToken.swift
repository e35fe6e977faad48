public import Configuration
import Crypto
public import HTTPTypes
public import Hummingbird
import ShopHTTP
public import ShopService

/// The credential cm-server presents to cm-api in `Shop-Service-Token` (`CM_API_SERVICE_TOKEN`,
/// from the chart's Secret): cm-api answers nobody else. While it changes, cm-api also accepts
/// `CM_API_SERVICE_TOKEN_NEXT`, so replicas of cm-server with the old and the new token are both
/// answered during a rollout (docs/SECURITY.md).
public struct ServiceToken: Sendable {
    /// The smallest token accepted, as for an HS256 secret.
    public static let minimumBytes = 32
    public static let header = HTTPField.Name("Shop-Service-Token")!

    /// What cm-server presents.
    public let value: String
    /// The current token's digest, then the next one's.
    private let digests: [SHA256.Digest]

    public init?(_ value: String, next: String? = nil) {
        let values = [value, next].compactMap { $0 }
        guard values.allSatisfy({ $0.utf8.count >= Self.minimumBytes }) else { return nil }
        self.value = value
        digests = values.map { SHA256.hash(data: Array($0.utf8)) }
    }

    /// Compares digests, so the time taken says nothing about how much of a guess was right.
    public func matches(_ presented: String?) -> Bool {
        guard let presented else { return false }
        let digest = SHA256.hash(data: Array(presented.utf8))
        return digests.contains(digest)
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
        guard token.matches(request.headers.value(of: ServiceToken.header)) else {
            var response = Response.error(
                .unauthorized, "cm-api answers cm-server only: the Shop-Service-Token header is missing or wrong")
            response.headers[.wwwAuthenticate] = #"Shop-Service-Token realm="cm-api""#
            return response
        }
        return try await next(request, context)
    }
}

extension ServiceToken {
    /// `CM_API_SERVICE_TOKEN` and `CM_API_SERVICE_TOKEN_NEXT`: `nil` when unset; each at least
    /// ``minimumBytes`` when set; the next one only beside a current one.
    public static func read(_ config: ConfigReader) throws(ConfigurationError) -> ServiceToken? {
        let next = config.text("cm.api.service.token.next", isSecret: true)
        guard let text = config.text("cm.api.service.token", isSecret: true) else {
            if next != nil { throw config.invalid("cm.api.service.token.next", "is set without CM_API_SERVICE_TOKEN") }
            return nil
        }
        guard ServiceToken(text) != nil else {
            throw config.invalid("cm.api.service.token", "must be at least \(minimumBytes) bytes")
        }
        guard let token = ServiceToken(text, next: next) else {
            throw config.invalid("cm.api.service.token.next", "must be at least \(minimumBytes) bytes")
        }
        return token
    }
}
