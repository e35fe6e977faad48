public import Configuration
import Crypto
public import Events
import Foundation
public import HTTPTypes
public import Hummingbird
public import HummingbirdAuth
import ShopHTTP
public import ShopService

/// What a router needs to authenticate: the token verifier (`nil` with `AUTH_MODE=none`) and the
/// service credential between cm-server and cm-api.
public struct RouteAuth: Sendable {
    public var verifier: TokenVerifier?
    public var serviceToken: ServiceToken?

    public init(verifier: TokenVerifier? = nil, serviceToken: ServiceToken? = nil) {
        self.verifier = verifier
        self.serviceToken = serviceToken
    }

    /// The original contract: no tokens, no service credential.
    public static let none = RouteAuth()

    /// Reads `AUTH_*` and `CM_API_SERVICE_TOKEN`; with `AUTH_MODE=jwt` the service token is
    /// required.
    public init(settings: AuthSettings, serviceToken: ServiceToken?) async throws(ConfigurationError) {
        if settings.mode == .jwt {
            guard serviceToken != nil else {
                throw ConfigurationError(
                    variable: "CM_API_SERVICE_TOKEN",
                    reason: "is required with AUTH_MODE=jwt: cm-api serves cm-server only")
            }
            self.init(verifier: try await TokenVerifier(settings: settings), serviceToken: serviceToken)
        } else {
            self.init(serviceToken: serviceToken)
        }
    }

    /// Adds the bearer-token middleware (with `AUTH_MODE=jwt`) to a group of public routes.
    public func protect<Context: AuthRequestContext<ShopPrincipal>>(_ group: RouterGroup<Context>) {
        if let verifier { group.add(middleware: BearerTokenMiddleware<Context>(verifier: verifier)) }
    }
}

/// Requires a valid bearer token and puts its principal in the context; anything else is a 401
/// in the contract's error shape with RFC 6750's `WWW-Authenticate`.
public struct BearerTokenMiddleware<Context: AuthRequestContext<ShopPrincipal>>: RouterMiddleware {
    let verifier: TokenVerifier

    public init(verifier: TokenVerifier) {
        self.verifier = verifier
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let fields = request.headers[values: .authorization]
        guard !fields.isEmpty else {
            return .unauthorized("A bearer token is required (Authorization: Bearer <token>)", rejection: nil)
        }
        guard fields.count == 1, let token = Self.bearerToken(fields[0]) else {
            return .unauthorized(
                "The Authorization header must be one bearer token (Authorization: Bearer <token>)",
                rejection: TokenRejection("the Authorization header is not one Bearer token"))
        }
        do {
            var context = context
            context.identity = try await verifier.principal(token: token)
            return try await next(request, context)
        } catch let rejection as TokenRejection {
            return .unauthorized("The bearer token is not accepted: \(rejection.reason)", rejection: rejection)
        }
    }
}

extension BearerTokenMiddleware {
    /// The token of `Bearer <token>`: the scheme in any case (RFC 9110, section 11.1), one or more
    /// spaces, then RFC 6750's token68 characters only.
    static func bearerToken(_ field: String) -> String? {
        let scheme = "bearer"
        guard field.utf8.count > scheme.utf8.count + 1,
            field.prefix(scheme.count).lowercased() == scheme
        else { return nil }
        let rest = field.dropFirst(scheme.count)
        guard rest.first == " " else { return nil }
        let token = rest.drop(while: { $0 == " " })
        guard !token.isEmpty,
            token.utf8.allSatisfy(Self.isToken68)
        else { return nil }
        return String(token)
    }

    private static func isToken68(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "+"),
            UInt8(ascii: "/"), UInt8(ascii: "="):
            true
        default: false
        }
    }
}

extension Response {
    /// 401: no token (`rejection` nil) or a bad one, with `WWW-Authenticate: Bearer` and, for a
    /// bad one, `error="invalid_token"` and its reason.
    public static func unauthorized(_ message: String, rejection: TokenRejection?) -> Response {
        var response = Response.error(.unauthorized, message)
        var challenge = #"Bearer realm="scalable-shop""#
        if let rejection {
            challenge += #", error="invalid_token", error_description="\#(rejection.reason)""#
        }
        response.headers[.wwwAuthenticate] = challenge
        return response
    }

    /// 403: a valid token without the right (a purchase made as someone else).
    public static func forbidden(_ message: String, errors: [FieldError] = []) -> Response {
        Response.error(.forbidden, message, errors: errors)
    }
}

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
