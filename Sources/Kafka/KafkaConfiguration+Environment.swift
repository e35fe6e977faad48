public import Events

extension KafkaConfiguration {
    /// Reads the connection settings of `CONTRACT.md`:
    /// - `KAFKA_BROKERS` (required): comma-separated `host:port`.
    /// - `KAFKA_USERNAME` / `KAFKA_PASSWORD` (optional, together): SASL credentials.
    /// - `KAFKA_SASL_MECHANISM`: `SCRAM-SHA-512` (default), `SCRAM-SHA-256` or `PLAIN`.
    /// - `KAFKA_TLS`: `true`/`false`; defaults to `true` when credentials are set, else `false`.
    /// - `KAFKA_CA_LOCATION`: a CA bundle for TLS; the system store when unset.
    public init(environment: Environment) throws(EnvironmentError) {
        self.init(bootstrapServers: try environment.hostPorts("KAFKA_BROKERS"))
        let username = environment.string("KAFKA_USERNAME")
        let password = environment.string("KAFKA_PASSWORD")
        let tlsDefault = username != nil ? "true" : "false"
        let tls = try environment.choice("KAFKA_TLS", of: ["true", "false"], default: tlsDefault) == "true"
        let caLocation = environment.string("KAFKA_CA_LOCATION")
        switch (username, password) {
        case (nil, nil):
            security = tls ? .tls(caLocation: caLocation) : .plaintext
        case (let username?, let password?):
            let mechanism = try environment.choice(
                "KAFKA_SASL_MECHANISM",
                of: ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"],
                default: "SCRAM-SHA-512"
            )
            security = .sasl(
                SASL(mechanism: mechanism, username: username, password: password), tls: tls, caLocation: caLocation)
        case (nil, _?):
            throw EnvironmentError(variable: "KAFKA_USERNAME", reason: "is required when KAFKA_PASSWORD is set")
        case (_?, nil):
            throw EnvironmentError(variable: "KAFKA_PASSWORD", reason: "is required when KAFKA_USERNAME is set")
        }
    }
}
