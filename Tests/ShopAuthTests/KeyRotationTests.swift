import Configuration
import Foundation
import JWTKit
import ShopService
import Testing

@testable import ShopAuth

/// Keys change without a restart (docs/SECURITY.md, "Rotating keys"): each step of a rotation
/// keeps every token that was good before it good, until the old key is retired on purpose.
@Suite struct KeyRotationTests {
    private static let current = "the-current-development-secret-32-bytes!"
    private static let next = "the-next-development-secret-of-32-bytes!"
    private static let alice = ShopPrincipal(userid: "a-001", username: "alice")

    private static func settings(_ keys: AuthSettings.Keys) -> AuthSettings {
        AuthSettings(mode: .jwt, keys: keys, issuer: "https://id.test/", audience: "shop")
    }

    private static func hmacToken(_ secret: String) async throws -> String {
        try await TokenMinter.token(
            for: alice, secret: secret, issuer: "https://id.test/", audience: "shop", lifetime: .seconds(60))
    }

    /// An ES256 key and a token it signed under `kid`.
    private struct ProviderKey {
        let kid: String
        let key = ES256PrivateKey()

        var jwk: String {
            let parameters = key.publicKey.parameters!
            return #"{"kty":"EC","crv":"P-256","kid":"\#(kid)","x":"\#(parameters.x)","y":"\#(parameters.y)"}"#
        }

        func token() async throws -> String {
            let signer = JWTKeyCollection()
            await signer.add(ecdsa: key, kid: JWKIdentifier(string: kid))
            let claims = ShopClaims(
                sub: "a-001", preferredUsername: "alice", scope: nil, exp: .init(value: Date().addingTimeInterval(60)),
                nbf: nil, iat: nil, iss: "https://id.test/", aud: AudienceClaim(value: ["shop"]))
            return try await signer.sign(claims, kid: JWKIdentifier(string: kid))
        }
    }

    private static func keySet(_ keys: [ProviderKey]) -> String {
        #"{"keys":[\#(keys.map(\.jwk).joined(separator: ","))]}"#
    }

    @Test func hs256AcceptsTheCurrentAndTheNextSecretAndNoOther() async throws {
        let verifier = try await TokenVerifier(settings: Self.settings(.hmac(secret: Self.current, next: Self.next)))
        #expect(try await verifier.principal(token: Self.hmacToken(Self.current)) == Self.alice)
        #expect(try await verifier.principal(token: Self.hmacToken(Self.next)) == Self.alice)
        await #expect(throws: TokenRejection("the signature does not verify or the claims are malformed")) {
            try await verifier.principal(token: Self.hmacToken(Self.current + "x"))
        }
        let before = try await TokenVerifier(settings: Self.settings(.hmac(secret: Self.current)))
        await #expect(throws: TokenRejection.self, "without the next secret, its tokens are refused") {
            try await before.principal(token: Self.hmacToken(Self.next))
        }
    }

    @Test func theNextSecretIsReadCheckedAndOnlyForHS256() throws {
        let base = ["AUTH_MODE": "jwt", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "AUTH_JWT_SECRET": Self.current]
        let settings = try AuthSettings(
            config: ConfigReader.shop(environment: base.merging(["AUTH_JWT_SECRET_NEXT": Self.next]) { $1 }))
        guard case .hmac(let secret, let next) = settings.keys else {
            Issue.record("not HS256")
            return
        }
        #expect(secret == Self.current && next == Self.next)
        let short = base.merging(["AUTH_JWT_SECRET_NEXT": "short"]) { $1 }
        #expect(throws: ConfigurationError.self) { try AuthSettings(config: ConfigReader.shop(environment: short)) }
        var withKeySet = base.merging(["AUTH_JWT_SECRET_NEXT": Self.next, "AUTH_JWKS_FILE": "/dev/null"]) { $1 }
        withKeySet["AUTH_JWT_SECRET"] = nil
        #expect(throws: ConfigurationError.self) {
            try AuthSettings(config: ConfigReader.shop(environment: withKeySet))
        }
    }

    @Test func cmAPIAcceptsTheCurrentAndTheNextServiceTokenWhileCmServerPresentsTheCurrent() throws {
        let token = try #require(
            try ServiceToken.read(
                ConfigReader.shop(environment: [
                    "CM_API_SERVICE_TOKEN": Self.current, "CM_API_SERVICE_TOKEN_NEXT": Self.next,
                ])))
        #expect(token.value == Self.current)
        #expect(token.matches(Self.current) && token.matches(Self.next) && !token.matches(Self.next + "x"))
        #expect(throws: ConfigurationError.self) {
            try ServiceToken.read(ConfigReader.shop(environment: ["CM_API_SERVICE_TOKEN_NEXT": Self.next]))
        }
        #expect(throws: ConfigurationError.self) {
            try ServiceToken.read(
                ConfigReader.shop(environment: ["CM_API_SERVICE_TOKEN": Self.current, "CM_API_SERVICE_TOKEN_NEXT": "x"])
            )
        }
    }

    @Test func aKeySetFileIsReadAgainWhenItChangesAndABrokenOneKeepsTheKeys() async throws {
        let path = FileManager.default.temporaryDirectory.appending(path: "jwks-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let old = ProviderKey(kid: "old")
        let new = ProviderKey(kid: "new")
        try Self.keySet([old]).write(toFile: path, atomically: true, encoding: .utf8)
        let verifier = try await TokenVerifier(settings: Self.settings(.jwks(json: Self.keySet([old]), path: path)))
        let file = try #require(verifier.keySetFile)
        #expect(try await verifier.principal(token: old.token()) == Self.alice)

        // The provider publishes the new key beside the old one: a token under the new kid is
        // accepted at once, before any periodic reload, because an unknown kid reads the file.
        try Self.keySet([old, new]).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await verifier.principal(token: new.token()) == Self.alice)
        #expect(try await verifier.principal(token: old.token()) == Self.alice)
        #expect(file.keyIDs == ["new", "old"])

        // A file that no longer parses (a half-written edit) leaves the keys as they were.
        try "{not json".write(toFile: path, atomically: true, encoding: .utf8)
        await #expect(throws: ConfigurationError.self) { try await file.reload() }
        #expect(try await verifier.principal(token: old.token()) == Self.alice)

        // The old key is retired: the next reload drops it.
        try Self.keySet([new]).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await file.reload() == .replaced(keyIDs: ["new"]))
        #expect(try await file.reload() == .unchanged)
        await #expect(throws: TokenRejection("the token's key id is not one of the configured keys")) {
            try await verifier.principal(token: old.token())
        }
        #expect(try await verifier.principal(token: new.token()) == Self.alice)
    }

    @Test func unknownKeyIDsReadTheFileAtMostOnceASecond() async throws {
        let path = FileManager.default.temporaryDirectory.appending(path: "jwks-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let old = ProviderKey(kid: "old")
        let new = ProviderKey(kid: "new")
        try Self.keySet([old]).write(toFile: path, atomically: true, encoding: .utf8)
        let file = try await KeySetFile(path: path, json: Self.keySet([old]))
        let start = ContinuousClock.now
        _ = await file.refreshForUnknownKeyID(now: start)
        try Self.keySet([old, new]).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(await file.refreshForUnknownKeyID(now: start + .milliseconds(500)).algorithmByKeyID["new"] == nil)
        #expect(await file.refreshForUnknownKeyID(now: start + .seconds(1)).algorithmByKeyID["new"] == "ES256")
    }

    @Test func anOperatorsSigningKeyMintsTokensThePodsVerifyWithItsPublicHalf() async throws {
        let pem = ES256PrivateKey().pemRepresentation
        let key = try SigningKey(pem: pem)
        #expect(try SigningKey(pem: pem).keyID == key.keyID, "a key's id is its thumbprint")
        let other = try SigningKey(pem: ES256PrivateKey().pemRepresentation)
        #expect(other.keyID != key.keyID)
        let keySet = SigningKey.keySet([key, other])
        #expect(!keySet.contains(#""d":"#), "the key set holds no private key")
        let verifier = try await TokenVerifier(settings: Self.settings(.jwks(json: keySet, path: "jwks.json")))
        for signer in [key, other] {
            let token = try await TokenMinter.token(
                for: Self.alice, signingKey: signer, issuer: "https://id.test/", audience: "shop",
                lifetime: .seconds(60))
            #expect(try await verifier.principal(token: token) == Self.alice)
        }
        let stranger = try SigningKey(pem: ES256PrivateKey().pemRepresentation)
        let token = try await TokenMinter.token(
            for: Self.alice, signingKey: stranger, issuer: "https://id.test/", audience: "shop", lifetime: .seconds(60))
        await #expect(throws: TokenRejection("the token's key id is not one of the configured keys")) {
            try await verifier.principal(token: token)
        }
    }
}
