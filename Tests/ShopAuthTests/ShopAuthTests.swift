import Configuration
import Events
import Foundation
import JWTKit
import NIOCore
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
        typealias Middleware = BearerTokenMiddleware<ShopRequestContext>
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

@Suite struct RateLimiterTests {
    @Test func aBucketAllowsItsBurstThenItsRate() {
        let limiter = RateLimiter(
            settings: RateLimitSettings(buy: .init(perSecond: 2, burst: 3), lists: nil))
        let start = ContinuousClock.now
        let burst = (0..<4).map { _ in limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start)!.allowed }
        #expect(burst == [true, true, true, false])
        let refused = limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start)!
        #expect(refused.retryAfter == 1 && refused.remaining == 0)
        // Another principal has its own bucket; half a second refills one request.
        #expect(limiter.take(.buy, principal: .subject(Array("b".utf8)), now: start)!.allowed)
        #expect(limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start + .milliseconds(500))!.allowed)
        #expect(!limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start + .milliseconds(500))!.allowed)
        #expect(
            limiter.take(.list, principal: .subject(Array("a".utf8)), now: start) == nil, "no list limit: unlimited")
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() throws {
        let limiter = RateLimiter(
            settings: RateLimitSettings(
                buy: nil, lists: nil, trustedProxies: [try #require(AddressRange("10.0.0.0/8"))]))
        let proxy: [UInt8] = [10, 1, 2, 3]
        let stranger: [UInt8] = [192, 0, 2, 1]
        // From a stranger the header is the caller's own claim: ignored.
        #expect(limiter.clientAddress(peer: stranger, forwardedFor: ["198.51.100.1"]) == stranger)
        // Through the proxy: the nearest address the proxies did not add.
        #expect(
            limiter.clientAddress(peer: proxy, forwardedFor: ["1.1.1.1, 198.51.100.1, 10.9.9.9"]) == [198, 51, 100, 1])
        // A spoofed left-most entry does not matter; garbage ends the chain at the last proxy.
        #expect(limiter.clientAddress(peer: proxy, forwardedFor: ["not-an-address"]) == proxy)
        #expect(AddressRange("::1")!.contains(AddressRange.bytes("::1")!))
        // A peer read straight from its socket address is the same principal as through the
        // byte path, IPv4 and IPv6, and an IPv4 client equals its IPv4-mapped IPv6 form.
        for text in ["192.0.2.1", "2001:db8::7", "::ffff:192.0.2.1"] {
            let address = try SocketAddress(ipAddress: text, port: 1)
            #expect(RateLimiter.Principal(address) == RateLimiter.Principal(address: AddressRange.bytes(address)!))
        }
        #expect(
            RateLimiter.Principal(try SocketAddress(ipAddress: "::ffff:192.0.2.1", port: 1))
                == RateLimiter.Principal(try SocketAddress(ipAddress: "192.0.2.1", port: 1)))
        #expect(AddressRange("10.0.0.0/33") == nil && AddressRange("example.com") == nil)
    }

    @Test func settingsReadTheVariablesAndZeroTurnsALimitOff() throws {
        let defaults = try RateLimitSettings(config: config([:]))
        #expect(defaults.buy == .init(perSecond: 20, burst: 40) && defaults.lists == .init(perSecond: 50, burst: 100))
        let off = try RateLimitSettings(config: config(["RATE_LIMIT_BUY_PER_SECOND": "0"]))
        #expect(off.buy == nil)
        #expect(throws: ConfigurationError.self) {
            try RateLimitSettings(config: config(["TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"]))
        }
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

    @Test func rateLimitsCountEachSubjectsOwnBytes() {
        let limiter = RateLimiter(settings: RateLimitSettings(buy: .init(perSecond: 1, burst: 1), lists: nil))
        let now = ContinuousClock.now
        #expect(limiter.take(.buy, principal: .subject(Array(composed.utf8)), now: now)!.allowed)
        #expect(limiter.take(.buy, principal: .subject(Array(decomposed.utf8)), now: now)!.allowed)
        #expect(!limiter.take(.buy, principal: .subject(Array(composed.utf8)), now: now)!.allowed)
    }
}
