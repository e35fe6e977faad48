import Configuration
import Foundation
import HummingbirdAuth
import JWTKit
import NIOCore
import PurchaseDomain
import PurchaseWire
import ShopService
import Testing

@testable import ShopAuth

private let secret = "a-development-secret-of-at-least-32-bytes!"
private let alice = ShopPrincipal(userid: "a-001", username: "alice")

private func settings(_ keys: AuthSettings.Keys) -> AuthSettings {
    AuthSettings(mode: .jwt, keys: keys, issuer: "https://id.test/", audience: "shop")
}

private func config(_ variables: [String: String]) -> ConfigReader {
    ConfigReader.shop(environment: variables)
}

@Suite struct TokenVerifierTests {
    @Test func aMintedTokenNamesItsPrincipal() async throws {
        let verifier = try await TokenVerifier(settings: settings(.hmac(secret: secret)))
        let token = try await TokenMinter.token(
            for: alice, secret: secret, issuer: "https://id.test/", audience: "shop", lifetime: .seconds(60))
        #expect(try await verifier.principal(token: token) == alice)
        let admin = ShopPrincipal(userid: "ops", username: "ops", isAdmin: true)
        let adminToken = try await TokenMinter.token(
            for: admin, secret: secret, issuer: "https://id.test/", audience: "shop", lifetime: .seconds(60))
        let principal = try await verifier.principal(token: adminToken)
        #expect(principal.isAdmin && principal.listedUserid == nil && principal.mayRead(purchaseOf: alice.userid))
        #expect(alice.listedUserid == alice.userid, "a list shows its caller's own purchases, by sub")
        #expect(!alice.mayRead(purchaseOf: "bob-id") && alice.mayRead(purchaseOf: alice.userid))
    }

    @Test func expiryAndNotBeforeAllowTheStatedLeewayAndNoMore() async throws {
        let verifier = try await TokenVerifier(settings: settings(.hmac(secret: secret)))
        let minted = Date()
        let token = try await TokenMinter.token(
            for: alice, secret: secret, issuer: "https://id.test/", audience: "shop", lifetime: .seconds(60),
            now: minted)
        // exp is minted + 60 s; the leeway is 30 s.
        #expect(try await verifier.principal(token: token, now: minted.addingTimeInterval(89)) == alice)
        await #expect(throws: TokenRejection("the token has expired")) {
            try await verifier.principal(token: token, now: minted.addingTimeInterval(91))
        }
    }

    @Test func anotherIssuerAudienceOrSecretIsRefused() async throws {
        let verifier = try await TokenVerifier(settings: settings(.hmac(secret: secret)))
        for (issuer, audience, key) in [
            ("https://evil.test/", "shop", secret), ("https://id.test/", "other", secret),
            ("https://id.test/", "shop", String(repeating: "k", count: 40)),
        ] {
            let token = try await TokenMinter.token(
                for: alice, secret: key, issuer: issuer, audience: audience, lifetime: .seconds(60))
            await #expect(throws: TokenRejection.self) { try await verifier.principal(token: token) }
        }
        await #expect(throws: TokenRejection.self) {
            try await verifier.principal(token: String(repeating: "a", count: TokenVerifier.maximumTokenBytes + 1))
        }
    }

    @Test func aJWKSVerifiesES256UnderItsKidAndNothingUnderHS256() async throws {
        let key = ES256PrivateKey()
        let parameters = try #require(key.publicKey.parameters)
        let jwks = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","x":"\#(parameters.x)","y":"\#(parameters.y)"}]}"#
        let verifier = try await TokenVerifier(settings: settings(.jwks(json: jwks, path: "jwks.json")))
        let claims = ShopClaims(
            sub: "a-001", preferredUsername: "alice", scope: nil, exp: .init(value: Date().addingTimeInterval(60)),
            nbf: nil, iat: nil, iss: "https://id.test/", aud: AudienceClaim(value: ["shop"]))
        let signer = JWTKeyCollection()
        await signer.add(ecdsa: key, kid: "ec-1")
        #expect(try await verifier.principal(token: await signer.sign(claims, kid: "ec-1")) == alice)
        // The same claims, HMAC-signed with the public key set as the secret: the classic confusion.
        let confused = JWTKeyCollection()
        await confused.add(hmac: HMACKey(from: jwks), digestAlgorithm: .sha256, kid: "ec-1")
        await #expect(throws: TokenRejection("the token's algorithm is not accepted")) {
            try await verifier.principal(token: await confused.sign(claims, kid: "ec-1"))
        }
        await #expect(throws: TokenRejection("the token's key id is not one of the configured keys")) {
            try await verifier.principal(token: await signer.sign(claims))
        }
    }

    @Test func aKeySetWithAPrivateKeyOrNoUsableKeyDoesNotStart() async throws {
        let key = ES256PrivateKey()
        let parameters = try #require(key.publicKey.parameters)
        let withPrivate =
            #"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","x":"\#(parameters.x)","y":"\#(parameters.y)","d":"AAAA"}]}"#
        await #expect(throws: ConfigurationError.self) {
            try await TokenVerifier(settings: settings(.jwks(json: withPrivate, path: "jwks.json")))
        }
        await #expect(throws: ConfigurationError.self) {
            try await TokenVerifier(settings: settings(.jwks(json: #"{"keys":[]}"#, path: "jwks.json")))
        }
    }

    @Test func bearerSchemeIsCaseInsensitiveAndTheTokenIsToken68() {
        typealias Middleware = BearerTokenMiddleware<BasicAuthRequestContext<ShopPrincipal>>
        #expect(Middleware.bearerToken("Bearer abc.def-_") == "abc.def-_")
        #expect(Middleware.bearerToken("bearer  abc") == "abc")
        #expect(Middleware.bearerToken("Basic abc") == nil)
        #expect(Middleware.bearerToken("Bearer") == nil)
        #expect(Middleware.bearerToken("Bearerabc") == nil)
        #expect(Middleware.bearerToken(#"Bearer a",b"#) == nil)
    }
}

@Suite struct AuthSettingsTests {
    @Test func noneIsTheDefaultAndJWTNeedsIssuerAudienceAndOneKeyKind() throws {
        #expect(try AuthSettings(config: config([:])).mode == .none)
        let complete = ["AUTH_MODE": "jwt", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "AUTH_JWT_SECRET": secret]
        #expect(try AuthSettings(config: config(complete)).mode == .jwt)
        for (variable, variables) in [
            ("AUTH_ISSUER", complete.filter { $0.key != "AUTH_ISSUER" }),
            ("AUTH_AUDIENCE", complete.filter { $0.key != "AUTH_AUDIENCE" }),
            ("AUTH_MODE", complete.filter { $0.key != "AUTH_JWT_SECRET" }),
            ("AUTH_JWT_SECRET", complete.merging(["AUTH_JWT_SECRET": "short"]) { $1 }),
            ("AUTH_JWT_SECRET", complete.merging(["AUTH_JWKS_FILE": "/etc/hosts"]) { $1 }),
            ("AUTH_MODE", complete.merging(["AUTH_MODE": "basic"]) { $1 }),
        ] {
            #expect(throws: ConfigurationError.self, "\(variable)") { try AuthSettings(config: config(variables)) }
            do {
                _ = try AuthSettings(config: config(variables))
            } catch {
                #expect(error.variable == variable)
            }
        }
    }

    @Test func jwtWithoutTheServiceTokenDoesNotStart() async throws {
        let settings = AuthSettings(mode: .jwt, keys: .hmac(secret: secret), issuer: "i", audience: "a")
        await #expect(
            throws: ConfigurationError(
                variable: "CM_API_SERVICE_TOKEN", reason: "is required with AUTH_MODE=jwt: cm-api serves cm-server only"
            )
        ) {
            try await RouteAuth(settings: settings, serviceToken: nil)
        }
        #expect(throws: ConfigurationError.self) { try ServiceToken.read(config(["CM_API_SERVICE_TOKEN": "short"])) }
        let token = try #require(try ServiceToken.read(config(["CM_API_SERVICE_TOKEN": secret])))
        #expect(token.matches(secret) && !token.matches(secret + "x") && !token.matches(nil))
    }
}

/// Names are the same only when they are the same bytes: Swift's `==` takes NFC "café" and NFD
/// "cafe\u{301}" as one string, MongoDB stores and compares them as two.
@Suite struct NamesComparedByteForByteTests {
    let composed = "caf\u{E9}"
    let decomposed = "cafe\u{301}"

    @Test func canonicallyEquivalentNamesAreDifferentNames() throws {
        #expect(composed == decomposed, "Swift's own equality, which the shop must not use for names")
        #expect(!composed.hasSameBytes(as: decomposed))
        let principal = ShopPrincipal(userid: composed, username: composed)
        #expect(!principal.mayRead(purchaseOf: decomposed) && principal.mayRead(purchaseOf: composed))
        let asTheOther = try Purchase(
            username: decomposed, userid: decomposed, price: Price(hundredths: 100),
            timestamp: Timestamp(millisecondsSinceEpoch: 0))
        #expect(principal.refusal(toBuy: asTheOther)?.map(\.field) == ["userid", "username"])
        let asItself = try Purchase(
            username: composed, userid: composed, price: Price(hundredths: 100),
            timestamp: Timestamp(millisecondsSinceEpoch: 0))
        #expect(principal.refusal(toBuy: asItself) == nil)
    }

}
