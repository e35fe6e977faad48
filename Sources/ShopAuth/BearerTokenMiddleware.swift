import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdAuth
import ShopHTTP

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

}
