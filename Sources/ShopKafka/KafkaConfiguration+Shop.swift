public import Configuration
public import Kafka
public import ShopService

extension KafkaConfiguration {
    /// Reads the connection settings of `docs/CONTRACT.md`:
    /// - `KAFKA_BROKERS` (required): comma-separated `host:port`.
    /// - `KAFKA_USERNAME` / `KAFKA_PASSWORD` (optional, together): SASL credentials.
    /// - `KAFKA_SASL_MECHANISM`: `SCRAM-SHA-512` (default), `SCRAM-SHA-256` or `PLAIN`.
    /// - `KAFKA_TLS`: `true`/`false`; defaults to `true` when credentials are set, else `false`.
    /// - `KAFKA_CA_LOCATION`: a CA bundle for TLS; the system store when unset.
    public init(config: ConfigReader) throws(ConfigurationError) {
        self.init(bootstrapServers: try config.hostPorts("kafka.brokers"))
        let username = config.text("kafka.username")
        let password = config.text("kafka.password", isSecret: true)
        let tlsDefault = username != nil ? "true" : "false"
        let tls = try config.choice("kafka.tls", of: ["true", "false"], default: tlsDefault) == "true"
        let caLocation = config.text("kafka.ca.location")
        switch (username, password) {
        case (nil, nil):
            security = tls ? .tls(caLocation: caLocation) : .plaintext
        case (let username?, let password?):
            let mechanism = try config.choice(
                "kafka.sasl.mechanism", of: ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"], default: "SCRAM-SHA-512")
            security = .sasl(
                SASL(mechanism: mechanism, username: username, password: password), tls: tls, caLocation: caLocation)
        case (nil, _?):
            throw config.invalid("kafka.username", "is required when KAFKA_PASSWORD is set")
        case (_?, nil):
            throw config.invalid("kafka.password", "is required when KAFKA_USERNAME is set")
        }
    }
}
