import ArgumentParser
import AsyncHTTPClient
import Configuration
import Foundation
import Hummingbird
import PurchaseDomain
import PurchaseWire
import ServiceLifecycle
import ShopAuth
import ShopKafka
import ShopService

/// cm-server, the customer-facing API: `POST /buy` produces purchases to Kafka (`cm-server`, or
/// `cm-server serve`); `cm-server token` mints a development token.
@main
struct CMServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cm-server",
        abstract: "Takes purchases over HTTP and produces them to Kafka.",
        discussion: "Configured by environment variables only (docs/CONTRACT.md).",
        subcommands: [Serve.self, Token.self, KeySet.self, KafkaACLs.self],
        defaultSubcommand: Serve.self)
}

/// The service (what the container runs).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Runs the service (the default).")

    func run() async throws {
        let (configuration, auth) = await ServiceMain.configuration(of: "cm-server") {
            config throws(ConfigurationError) in
            let configuration = try CMServerConfiguration(config: config)
            return (
                configuration,
                try await RouteAuth(settings: configuration.auth, serviceToken: configuration.serviceToken)
            )
        }
        // Before anything logs or makes an HTTP client: both take the tracer they find.
        let observability = await ServiceMain.observability(of: "cm-server")
        await ServiceMain.run("cm-server", logLevel: configuration.logLevel) { logger in
            try await HTTPClient.withHTTPClient(configuration: PurchaseListClient.httpConfiguration()) { http in
                try await PurchaseListClient.withTracedHTTPClient { tracedHTTP in
                    let app = try buildApplication(
                        configuration: configuration, auth: auth, http: http, tracedHTTP: tracedHTTP, logger: logger)
                    // SIGTERM/SIGINT: the server stops accepting and finishes the requests in flight
                    // (each waits at most for its delivery), then the producer flushes; all within
                    // SHUTDOWN_TIMEOUT_MS, after which what is left is cancelled.
                    try await ServiceGroup(
                        configuration: .shop(
                            services: ServiceGroupConfiguration.exportingFirst(observability, then: [app]),
                            shutdownTimeout: configuration.shutdownTimeout, logger: logger)
                    ).run()
                }
            }
        }
    }
}

/// `cm-server token`: a bearer token, signed ES256 with an operator's key (`--signing-key`, whose
/// public half the serving pods verify with: `cm-server jwks`), or HS256 with the local
/// `AUTH_JWT_SECRET` for trying `AUTH_MODE=jwt` with `make run` (docs/RUNNING.md, "Signing in").
/// In production an identity provider issues the tokens; this is the operator's tool for
/// development, smoke tests and `helm test`, run outside the serving pods.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints a bearer token: ES256 with --signing-key, else HS256 with AUTH_JWT_SECRET.",
        discussion: "Reads AUTH_ISSUER and AUTH_AUDIENCE (and AUTH_JWT_SECRET, or SECRETS_DIR) as the service does.")

    @Option(help: "The user id (the token's sub, the purchase's userid).")
    var sub: String
    @Option(help: "The username (preferred_username, the purchase's username).")
    var username: String
    @Flag(help: "Adds the shop:admin scope: may read every user's purchases.")
    var admin = false
    @Option(help: "Lifetime in seconds (1 to 86400).")
    var ttl = 3600
    @Option(help: "A P-256 private key (PEM) to sign ES256 with, under its RFC 7638 thumbprint as kid.")
    var signingKey: String?

    func validate() throws {
        if let violation = Purchase.nameViolation(sub) { throw ValidationError("--sub \(violation)") }
        if let violation = Purchase.nameViolation(username) { throw ValidationError("--username \(violation)") }
        guard (1...86_400).contains(ttl) else { throw ValidationError("--ttl must be from 1 to 86400 seconds") }
    }

    func run() async throws {
        let signingKey = try self.signingKey.map(KeySet.load)
        let (secret, issuer, audience) = await ServiceMain.configuration(of: "cm-server token") {
            config throws(ConfigurationError) in
            var secret: String?
            if signingKey == nil {
                let text = try config.required("auth.jwt.secret", "the HS256 secret to sign with", isSecret: true)
                guard text.utf8.count >= AuthSettings.minimumSecretBytes else {
                    throw config.invalid(
                        "auth.jwt.secret", "must be at least \(AuthSettings.minimumSecretBytes) bytes")
                }
                secret = text
            }
            return (
                secret, try config.required("auth.issuer", "the iss to sign"),
                try config.required("auth.audience", "the aud to sign")
            )
        }
        let principal = ShopPrincipal(userid: sub, username: username, isAdmin: admin)
        if let signingKey {
            print(
                try await TokenMinter.token(
                    for: principal, signingKey: signingKey, issuer: issuer, audience: audience,
                    lifetime: .seconds(ttl)))
        } else if let secret {
            print(
                try await TokenMinter.token(
                    for: principal, secret: secret, issuer: issuer, audience: audience, lifetime: .seconds(ttl)))
        }
    }
}

/// `cm-server jwks KEY...`: the JSON Web Key Set of the public halves of signing keys, for the
/// ConfigMap the serving pods mount (`auth.jwksConfigMap`). Give the old and the new key during
/// a rotation (docs/SECURITY.md, "Rotating keys").
struct KeySet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwks", abstract: "Prints the public key set (JWKS) of P-256 signing keys (PEM files).")

    @Argument(help: "P-256 private keys in PEM (openssl ecparam -name prime256v1 -genkey -noout).")
    var keys: [String]

    func validate() throws {
        guard !keys.isEmpty else { throw ValidationError("name at least one key file") }
    }

    func run() throws {
        print(SigningKey.keySet(try keys.map(Self.load)))
    }

    static func load(_ path: String) throws -> SigningKey {
        guard let data = FileManager.default.contents(atPath: path), let pem = String(data: data, encoding: .utf8)
        else {
            throw ValidationError("cannot read the signing key \(path)")
        }
        do {
            return try SigningKey(pem: pem)
        } catch {
            throw ValidationError("\(path) is not a P-256 private key in PEM: \(error)")
        }
    }
}

/// `cm-server kafka-acls`: the Kafka ACLs cm-server's identity needs, as Strimzi's `KafkaUser`
/// lists them.
struct KafkaACLs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-acls",
        abstract: "Prints the Kafka ACLs cm-server needs, as a KafkaUser's acls.",
        discussion: "Reads KAFKA_TOPIC as the service does.")

    func run() async throws {
        let access = await ServiceMain.configuration(of: "cm-server kafka-acls") { config throws(ConfigurationError) in
            kafkaAccess(topic: CMServerConfiguration.topic(config))
        }
        print(access.strimziACLs)
    }
}
