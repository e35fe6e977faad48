public import Configuration
import Foundation
public import ShopService

/// How the services decide who a request is from (`docs/SECURITY.md`).
public struct AuthSettings: Sendable {
    public enum Mode: String, Sendable {
        /// The original contract: anyone may buy as and read anyone.
        case none
        /// Bearer JWTs on the public routes; cm-api also needs the service credential.
        case jwt
    }

    /// The keys tokens are verified with: exactly one kind, so an HMAC secret can never stand in
    /// for a public key (or the reverse).
    public enum Keys: Sendable {
        /// `AUTH_JWT_SECRET`: HS256 with a shared secret of at least 32 bytes; `next` is
        /// `AUTH_JWT_SECRET_NEXT`, also accepted while the secret changes (docs/SECURITY.md).
        case hmac(secret: String, next: String? = nil)
        /// `AUTH_JWKS_FILE`: RS256 and ES256 (P-256) public keys from a JSON Web Key Set, read
        /// again when the file changes (`AUTH_JWKS_RELOAD_S`).
        case jwks(json: String, path: String)
    }

    /// `AUTH_MODE`: `none` (default) or `jwt`.
    public var mode: Mode
    /// The verification keys; set exactly when `mode` is `jwt`.
    public var keys: Keys?
    /// `AUTH_ISSUER`: the `iss` every token must carry (required with `jwt`).
    public var issuer: String
    /// `AUTH_AUDIENCE`: a value the token's `aud` must contain (required with `jwt`).
    public var audience: String
    /// `AUTH_CLOCK_LEEWAY_S` (default 30, at most 300): how far `exp` and `nbf` may be off.
    public var leeway: Duration
    /// `AUTH_JWKS_RELOAD_S` (default 10, 1 to 3600): how often the key set file is checked for a
    /// change. A token naming an unknown key id also has it read again, at most once a second.
    public var keySetReload: Duration

    /// The smallest HS256 secret accepted: the hash's own size (RFC 7518, section 3.2).
    public static let minimumSecretBytes = 32

    public init(
        mode: Mode, keys: Keys?, issuer: String, audience: String, leeway: Duration = .seconds(30),
        keySetReload: Duration = .seconds(10)
    ) {
        self.mode = mode
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.keySetReload = keySetReload
    }

    public init(config: ConfigReader) throws(ConfigurationError) {
        mode = Mode(rawValue: try config.choice("auth.mode", of: ["none", "jwt"], default: "none"))!
        leeway = .seconds(try config.integer("auth.clock.leeway.s", default: 30, range: 0...300))
        keySetReload = .seconds(try config.integer("auth.jwks.reload.s", default: 10, range: 1...3600))
        let secret = config.text("auth.jwt.secret", isSecret: true)
        let nextSecret = config.text("auth.jwt.secret.next", isSecret: true)
        let jwksPath = config.text("auth.jwks.file")
        guard mode == .jwt else {
            keys = nil
            issuer = ""
            audience = ""
            return
        }
        issuer = try config.required("auth.issuer", "with AUTH_MODE=jwt: the iss every token must carry")
        audience = try config.required("auth.audience", "with AUTH_MODE=jwt: a value every token's aud must contain")
        switch (secret, jwksPath) {
        case (let secret?, nil):
            for (key, value) in [("auth.jwt.secret", secret), ("auth.jwt.secret.next", nextSecret ?? secret)]
            where value.utf8.count < Self.minimumSecretBytes {
                throw config.invalid(key, "must be at least \(Self.minimumSecretBytes) bytes for HS256")
            }
            keys = .hmac(secret: secret, next: nextSecret)
        case (nil, let path?):
            guard nextSecret == nil else {
                throw config.invalid("auth.jwt.secret.next", "is set with AUTH_JWKS_FILE: it belongs to HS256")
            }
            guard let data = FileManager.default.contents(atPath: path), let json = String(data: data, encoding: .utf8)
            else {
                throw config.invalid("auth.jwks.file", "cannot be read: \(path)")
            }
            keys = .jwks(json: json, path: path)
        case (nil, nil):
            throw config.invalid(
                "auth.mode", "is jwt but neither AUTH_JWT_SECRET (HS256) nor AUTH_JWKS_FILE (RS256/ES256) is set")
        case (_?, _?):
            throw config.invalid(
                "auth.jwt.secret", "and AUTH_JWKS_FILE are both set: choose one, so no token can pick its key type")
        }
    }
}
