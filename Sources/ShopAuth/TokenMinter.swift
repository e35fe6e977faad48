public import Foundation
import JWTKit

/// Signs HS256 tokens with the local secret: the development minter behind `cm-server token`,
/// so someone trying `AUTH_MODE=jwt` with `make run` gets a token in one line.
public enum TokenMinter {
    public static func token(
        for principal: ShopPrincipal, secret: String, issuer: String, audience: String, lifetime: Duration,
        now: Date = Date()
    ) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        let seconds = TimeInterval(lifetime.components.seconds)
        // Whole seconds: some libraries refuse a NumericDate with a fraction.
        let now = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let claims = ShopClaims(
            sub: SubjectClaim(value: principal.userid), preferredUsername: principal.username,
            scope: principal.isAdmin ? ShopPrincipal.adminScope : nil,
            exp: ExpirationClaim(value: now.addingTimeInterval(seconds)), nbf: nil,
            iat: IssuedAtClaim(value: now), iss: IssuerClaim(value: issuer), aud: AudienceClaim(value: [audience]))
        return try await keys.sign(claims, header: ["typ": "JWT"])
    }
}
