public import Foundation
import JWTKit
import PurchaseDomain
import ShopHTTP
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

/// Verifies bearer JWTs with jwt-kit: the signature with the configured key kind, then the
/// algorithm, `exp` (required), `nbf`, `iss`, `aud` and the identity claims.
///
/// Keys rotate without a restart: HS256 accepts the current and the next secret during a change;
/// a JSON Web Key Set is read again when its file changes (``KeySetReloader``, and at once, at
/// most once a second, when a token names a key id the set does not hold), so an identity
/// provider's new key works as soon as the mounted ConfigMap shows it.
public struct TokenVerifier: Sendable {
    /// Tokens longer than this are refused before any parsing (a header line costs memory).
    public static let maximumTokenBytes = 8 * 1024

    private enum Keys: Sendable {
        /// HS256: the current secret, then the next one.
        case hmac([JWTKeyCollection])
        case jwks(KeySetFile)
    }

    private let keys: Keys
    private let issuer: String
    private let audience: String
    private let leeway: TimeInterval

    public init(settings: AuthSettings) async throws(ConfigurationError) {
        issuer = settings.issuer
        audience = settings.audience
        leeway = TimeInterval(settings.leeway.components.seconds)
        switch settings.keys {
        case .hmac(let secret, let next):
            var collections: [JWTKeyCollection] = []
            for secret in [secret, next].compactMap({ $0 }) {
                let collection = JWTKeyCollection()
                await collection.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
                collections.append(collection)
            }
            keys = .hmac(collections)
        case .jwks(let json, let path):
            keys = .jwks(try await KeySetFile(path: path, json: json))
        case nil:
            throw ConfigurationError(variable: "AUTH_MODE", reason: "is jwt but no verification key is configured")
        }
    }

    /// The key set file, when the keys come from one: what ``KeySetReloader`` reads again.
    public var keySetFile: KeySetFile? {
        if case .jwks(let file) = keys { file } else { nil }
    }

    /// The principal `token` speaks for.
    public func principal(token: String, now: Date = Date()) async throws(TokenRejection) -> ShopPrincipal {
        guard token.utf8.count <= Self.maximumTokenBytes else {
            throw TokenRejection("the token is longer than \(Self.maximumTokenBytes) bytes")
        }
        let header = try Self.header(of: token)
        // The header's algorithm must be the key's own: never `none`, never HS256 against a public
        // key, never a public-key algorithm against the shared secret.
        // jwt-kit then verifies with the key the header's kid names (HS256: each secret in turn).
        let candidates: [JWTKeyCollection]
        switch keys {
        case .hmac(let collections):
            guard header.alg == "HS256" else { throw TokenRejection("the token's algorithm is not accepted") }
            candidates = collections
        case .jwks(let file):
            guard let kid = header.kid else {
                throw TokenRejection("the token's key id is not one of the configured keys")
            }
            var keySet = file.current
            if keySet.algorithmByKeyID[kid] == nil { keySet = await file.refreshForUnknownKeyID() }
            guard let expected = keySet.algorithmByKeyID[kid] else {
                throw TokenRejection("the token's key id is not one of the configured keys")
            }
            guard header.alg == expected else { throw TokenRejection("the token's algorithm is not accepted") }
            candidates = [keySet.keys]
        }
        var verified: ShopClaims?
        for collection in candidates where verified == nil {
            verified = try? await collection.verify(Array(token.utf8), as: ShopClaims.self)
        }
        guard let claims = verified else {
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
        guard parts.count == 3, let data = Base64URL.decode(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: data)
        else {
            throw TokenRejection("the token is not a signed JWT (header.payload.signature)")
        }
        guard header.crit == nil else { throw TokenRejection("the token names critical header extensions") }
        return header
    }
}
