public import Foundation
import JWTKit
import PurchaseDomain
public import ShopService

/// Why a bearer token was refused. `reason` goes to the client (`error_description`): it names
/// the rule, never a key or the expected value.
public struct TokenRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// The claims the shop reads from a token. They are checked by ``TokenVerifier`` after the
/// signature, against the configured issuer, audience and clock leeway, which this type does not
/// know; jwt-kit's own hook therefore has nothing left to check.
struct ShopClaims: JWTPayload {
    var sub: SubjectClaim?
    var preferredUsername: String?
    var scope: String?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?

    enum CodingKeys: String, CodingKey {
        case sub, scope, exp, nbf, iat, iss, aud
        case preferredUsername = "preferred_username"
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Verifies bearer JWTs with jwt-kit: the signature with the one configured key kind, then the
/// algorithm, `exp` (required), `nbf`, `iss`, `aud` and the identity claims.
public struct TokenVerifier: Sendable {
    /// Tokens longer than this are refused before any parsing (a header line costs memory).
    public static let maximumTokenBytes = 8 * 1024

    private let keys: JWTKeyCollection
    /// HS256 mode: the one algorithm; JWKS mode: each key id's algorithm.
    private let hmac: Bool
    private let algorithmByKeyID: [String: String]
    private let issuer: String
    private let audience: String
    private let leeway: TimeInterval

    public init(settings: AuthSettings) async throws(ConfigurationError) {
        keys = JWTKeyCollection()
        issuer = settings.issuer
        audience = settings.audience
        leeway = TimeInterval(settings.leeway.components.seconds)
        switch settings.keys {
        case .hmac(let secret):
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            hmac = true
            algorithmByKeyID = [:]
        case .jwks(let json, let path):
            hmac = false
            let invalid = { (reason: String) in ConfigurationError(variable: "AUTH_JWKS_FILE", reason: reason) }
            let jwks: JWKS
            do {
                jwks = try JSONDecoder().decode(JWKS.self, from: Data(json.utf8))
            } catch {
                throw invalid("is not a JSON Web Key Set: \(path)")
            }
            var algorithms: [String: String] = [:]
            for jwk in jwks.keys {
                guard let kid = jwk.keyIdentifier?.string, let algorithm = Self.algorithm(of: jwk) else { continue }
                guard jwk.privateExponent == nil else {
                    throw invalid("holds a private key (kid \(kid)): mount the public keys only")
                }
                do {
                    try await keys.add(jwk: jwk)
                } catch {
                    throw invalid("has a key jwt-kit cannot use (kid \(kid)): \(error)")
                }
                algorithms[kid] = algorithm
            }
            guard !algorithms.isEmpty else {
                throw invalid("has no RS256 or ES256 (P-256) signing key with a kid: \(path)")
            }
            algorithmByKeyID = algorithms
        case nil:
            throw ConfigurationError(variable: "AUTH_MODE", reason: "is jwt but no verification key is configured")
        }
    }

    /// The one algorithm a JWK may verify: RS256 for an RSA key, ES256 for a P-256 key; `nil`
    /// for anything else (an encryption key, another curve or algorithm), which is skipped.
    static func algorithm(of jwk: JWK) -> String? {
        let declared = jwk.algorithm?.rawValue
        switch jwk.keyType {
        case .rsa where declared == nil || declared == "RS256": return "RS256"
        case .ecdsa where jwk.curve == .ecdsa(.p256) && (declared == nil || declared == "ES256"): return "ES256"
        default: return nil
        }
    }

    /// The principal `token` speaks for.
    public func principal(token: String, now: Date = Date()) async throws(TokenRejection) -> ShopPrincipal {
        guard token.utf8.count <= Self.maximumTokenBytes else {
            throw TokenRejection("the token is longer than \(Self.maximumTokenBytes) bytes")
        }
        let header = try Self.header(of: token)
        // The header's algorithm must be the key's own: never `none`, never HS256 against a public
        // key, never a public-key algorithm against the shared secret.
        // jwt-kit then verifies with the key the header's kid names (HS256: the one secret).
        if hmac {
            guard header.alg == "HS256" else { throw TokenRejection("the token's algorithm is not accepted") }
        } else {
            guard let kid = header.kid, let expected = algorithmByKeyID[kid] else {
                throw TokenRejection("the token's key id is not one of the configured keys")
            }
            guard header.alg == expected else { throw TokenRejection("the token's algorithm is not accepted") }
        }
        let claims: ShopClaims
        do {
            claims = try await keys.verify(Array(token.utf8), as: ShopClaims.self)
        } catch {
            throw TokenRejection("the signature does not verify or the claims are malformed")
        }
        guard let exp = claims.exp else { throw TokenRejection("the token has no exp") }
        guard now.timeIntervalSince(exp.value) < leeway else { throw TokenRejection("the token has expired") }
        if let nbf = claims.nbf, nbf.value.timeIntervalSince(now) > leeway {
            throw TokenRejection("the token is not valid yet (nbf)")
        }
        guard claims.iss?.value == issuer else { throw TokenRejection("the token's issuer is not accepted") }
        guard let aud = claims.aud, aud.value.contains(audience) else {
            throw TokenRejection("the token's audience does not include this service")
        }
        guard let userid = claims.sub?.value, Purchase.nameViolation(userid) == nil else {
            throw TokenRejection("the token's sub is missing or not a valid userid")
        }
        guard let username = claims.preferredUsername, Purchase.nameViolation(username) == nil else {
            throw TokenRejection("the token's preferred_username is missing or not a valid username")
        }
        let scopes = claims.scope?.split(separator: " ") ?? []
        return ShopPrincipal(
            userid: userid, username: username, isAdmin: scopes.contains(Substring(ShopPrincipal.adminScope)))
    }

    private struct Header: Decodable {
        var alg: String?
        var kid: String?
        var crit: [String]?
    }

    /// The JOSE header, decoded before any key is chosen. A token whose header names critical
    /// extensions is refused: the shop understands none (RFC 7515, section 4.1.11).
    private static func header(of token: String) throws(TokenRejection) -> Header {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = base64URLDecoded(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: data)
        else {
            throw TokenRejection("the token is not a signed JWT (header.payload.signature)")
        }
        guard header.crit == nil else { throw TokenRejection("the token names critical header extensions") }
        return header
    }

    static func base64URLDecoded(_ text: Substring) -> Data? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return nil
        }
        var base64 = String(text).replacing("-", with: "+").replacing("_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
