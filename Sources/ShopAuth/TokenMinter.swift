import Crypto
public import Foundation
import JWTKit
import ShopHTTP

/// Signs tokens: HS256 with the local secret (the development minter behind `cm-server token`,
/// so someone trying `AUTH_MODE=jwt` with `make run` gets a token in one line), or ES256 with an
/// operator's ``SigningKey`` that never enters the cluster.
public enum TokenMinter {
    public static func token(
        for principal: ShopPrincipal, secret: String, issuer: String, audience: String, lifetime: Duration,
        now: Date = Date()
    ) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(
            claims(for: principal, issuer: issuer, audience: audience, lifetime: lifetime, now: now),
            header: ["typ": "JWT"])
    }

    static func claims(
        for principal: ShopPrincipal, issuer: String, audience: String, lifetime: Duration, now: Date
    ) -> ShopClaims {
        let seconds = TimeInterval(lifetime.components.seconds)
        // Whole seconds: some libraries refuse a NumericDate with a fraction.
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        return ShopClaims(
            sub: SubjectClaim(value: principal.userid), preferredUsername: principal.username,
            scope: principal.isAdmin ? ShopPrincipal.adminScope : nil,
            exp: ExpirationClaim(value: now.addingTimeInterval(seconds)), nbf: nil,
            iat: IssuedAtClaim(value: now), iss: IssuerClaim(value: issuer), aud: AudienceClaim(value: [audience]))
    }
}

/// An ES256 signing key of the operator's (a P-256 private key in PEM, e.g. from
/// `openssl ecparam -name prime256v1 -genkey -noout`): `cm-server token --signing-key` signs with
/// it outside the cluster, and `cm-server jwks` prints its public half for the key set the
/// serving pods mount, so they verify tokens and can mint none.
public struct SigningKey: Sendable {
    let key: ES256PrivateKey
    /// RFC 7638's thumbprint of the public key (SHA-256 over its required members), base64url:
    /// the same key always has the same id, and a new key a new one.
    public let keyID: String

    public init(pem: String) throws {
        key = try ES256PrivateKey(pem: pem)
        guard let parameters = key.publicKey.parameters else {
            throw JWTError.generic(identifier: "ES256", reason: "no public key")
        }
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(parameters.x)","y":"\#(parameters.y)"}"#
        keyID = Base64URL.encode(Data(SHA256.hash(data: Array(canonical.utf8))))
    }

    /// The public key as a JWK for a key set (`AUTH_JWKS_FILE`).
    public var publicJWK: String {
        let parameters = key.publicKey.parameters!
        return
            #"{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"\#(keyID)","x":"\#(parameters.x)","y":"\#(parameters.y)"}"#
    }

    /// A key set of these keys' public halves: during a rotation, the old and the new.
    public static func keySet(_ keys: [SigningKey]) -> String {
        #"{"keys":[\#(keys.map(\.publicJWK).joined(separator: ","))]}"#
    }
}

extension TokenMinter {
    /// An ES256 token signed with `signingKey` under its key id.
    public static func token(
        for principal: ShopPrincipal, signingKey: SigningKey, issuer: String, audience: String, lifetime: Duration,
        now: Date = Date()
    ) async throws -> String {
        let keys = JWTKeyCollection()
        let kid = JWKIdentifier(string: signingKey.keyID)
        await keys.add(ecdsa: signingKey.key, kid: kid)
        return try await keys.sign(
            claims(for: principal, issuer: issuer, audience: audience, lifetime: lifetime, now: now), kid: kid,
            header: ["typ": "JWT"])
    }
}
