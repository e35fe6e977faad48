import Configuration
import Kafka
import Logging
import PurchaseDomain
import PurchaseWire
import ShopKafka
import ShopService
import Testing

@testable import CMServer

@Suite struct CMServerConfigurationTests {
    @Test func onlyTheBrokersAreRequiredAndTheRestHasContractDefaults() throws {
        let configuration = try CMServerConfiguration(config: .shop(environment: ["KAFKA_BROKERS": "kafka:9092"]))
        #expect(configuration.port == 3001)
        #expect(configuration.kafka.bootstrapServers == ["kafka:9092"])
        #expect(configuration.kafka.security == .plaintext)
        #expect(configuration.topic == "scalable-shop-purchases")
        #expect(configuration.cmAPIHost == "localhost:3000")
        #expect(configuration.logLevel == .info)
        #expect(configuration.deliveryTimeout == .seconds(10))
        #expect(configuration.cmAPITimeout == .seconds(5))
        #expect(configuration.shutdownTimeout == .seconds(25))
        #expect(configuration.linger == .milliseconds(1))
        #expect(configuration.idleTimeout == .seconds(75))
        #expect(configuration.timestampRule.maximumFuture == .seconds(86_400))
        #expect(configuration.idempotencyLookupTimeout == .seconds(1))
    }

    @Test func everyVariableIsRead() throws {
        let configuration = try CMServerConfiguration(
            config: .shop(environment: [
                "PORT": "8080", "KAFKA_BROKERS": "k1:9092, k2:9093", "KAFKA_TOPIC": "t", "CM_API_HOST": "cm-api:3000",
                "LOG_LEVEL": "DEBUG", "KAFKA_USERNAME": "shop", "KAFKA_PASSWORD": "secret",
                "KAFKA_DELIVERY_TIMEOUT_MS": "2500", "CM_API_TIMEOUT_MS": "750", "SHUTDOWN_TIMEOUT_MS": "9000",
                "KAFKA_LINGER_MS": "0", "HTTP_IDLE_TIMEOUT_MS": "3000", "TIMESTAMP_MAX_FUTURE_S": "600",
                "IDEMPOTENCY_LOOKUP_TIMEOUT_MS": "250",
            ])
        )
        #expect(configuration.port == 8080)
        #expect(configuration.kafka.bootstrapServers == ["k1:9092", "k2:9093"])
        #expect(configuration.topic == "t")
        #expect(configuration.cmAPIHost == "cm-api:3000")
        #expect(configuration.logLevel == .debug)
        #expect(configuration.deliveryTimeout == .milliseconds(2500))
        #expect(configuration.cmAPITimeout == .milliseconds(750))
        #expect(configuration.shutdownTimeout == .seconds(9))
        #expect(configuration.linger == .zero)
        #expect(configuration.idleTimeout == .seconds(3))
        #expect(configuration.timestampRule.maximumFuture == .seconds(600))
        #expect(configuration.idempotencyLookupTimeout == .milliseconds(250))
        #expect(configuration.kafka.security == .sasl(.init(username: "shop", password: "secret"), tls: true))
    }

    @Test(
        arguments: [
            ([:], "KAFKA_BROKERS is required: comma-separated host:port list"),
            (
                ["KAFKA_BROKERS": "kafka"],
                "KAFKA_BROKERS must be a comma-separated host:port list, \"kafka\" is not host:port"
            ),
            (
                ["KAFKA_BROKERS": "k:9092,"],
                "KAFKA_BROKERS must be a comma-separated host:port list, \"\" is not host:port"
            ),
            (["KAFKA_BROKERS": "k:9092", "PORT": "http"], "PORT must be a port number from 1 to 65535, got \"http\""),
            (
                ["KAFKA_BROKERS": "k:9092", "PORT": "70000"],
                "PORT must be a port number from 1 to 65535, got \"70000\""
            ),
            (["KAFKA_BROKERS": "k:9092", "CM_API_HOST": "cm-api"], "CM_API_HOST must be host:port, got \"cm-api\""),
            (
                ["KAFKA_BROKERS": "k:9092", "SHUTDOWN_TIMEOUT_MS": "12000"],
                "SHUTDOWN_TIMEOUT_MS must exceed KAFKA_DELIVERY_TIMEOUT_MS by more than 5000, so requests in flight are answered"
            ),
            (
                ["KAFKA_BROKERS": "k:9092", "HTTP_IDLE_TIMEOUT_MS": "0"],
                "HTTP_IDLE_TIMEOUT_MS must be a number of milliseconds from 1000 to 3600000, got \"0\""
            ),
            (
                ["KAFKA_BROKERS": "k:9092", "TIMESTAMP_MAX_FUTURE_S": "604801"],
                "TIMESTAMP_MAX_FUTURE_S must be a whole number from 0 to 604800, got \"604801\""
            ),
            (
                ["KAFKA_BROKERS": "k:9092", "LOG_LEVEL": "loud"],
                "LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical, got \"loud\""
            ),
            (
                ["KAFKA_BROKERS": "k:9092", "KAFKA_PASSWORD": "p"],
                "KAFKA_USERNAME is required when KAFKA_PASSWORD is set"
            ),
            (
                ["KAFKA_BROKERS": "k:9092", "KAFKA_USERNAME": "u"],
                "KAFKA_PASSWORD is required when KAFKA_USERNAME is set"
            ),
            (
                [
                    "KAFKA_BROKERS": "k:9092", "KAFKA_USERNAME": "u", "KAFKA_PASSWORD": "p",
                    "KAFKA_SASL_MECHANISM": "GSSAPI",
                ],
                "KAFKA_SASL_MECHANISM must be one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, got \"GSSAPI\""
            ),
        ] as [([String: String], String)])
    func aMissingOrMalformedValueIsOneLineNamingTheVariable(_ values: [String: String], message: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try CMServerConfiguration(config: .shop(environment: values))
        }
        #expect(error?.description == message)
    }
}
