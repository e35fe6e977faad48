import Configuration
import Foundation
import Kafka
import PurchaseWire
import ShopKafka
import ShopService
import UnixSignals

/// kafka-mock: librdkafka's mock cluster as a local Kafka for `make run` and the end-to-end
/// tests (there is no Kafka broker on these machines). It speaks the real Kafka protocol on
/// loopback ports and keeps everything in memory.
///
/// It creates the purchases topic and its dead-letter topic, prints `bootstrap <host:port>` on
/// one line (and writes the address to `KAFKA_MOCK_BOOTSTRAP_FILE` when set), then serves until
/// SIGTERM or SIGINT. SIGUSR1 takes every broker down (connections close, nothing is accepted),
/// SIGUSR2 brings them back: the control the fault tests use.
@main
struct KafkaMockServer {
    static func main() async throws {
        let config = ConfigReader.shop()
        let (brokers, partitions, topic) = await ServiceMain.configuration(of: "kafka-mock", config: config) {
            config throws(ConfigurationError) in
            (
                try config.integer("kafka.mock.brokers", default: 1, range: 1...9),
                try config.integer("kafka.mock.partitions", default: 6, range: 1...128),
                config.text("kafka.topic", default: "scalable-shop-purchases")
            )
        }
        let cluster = try KafkaMockCluster(brokers: brokers)
        for name in [topic, DeadLetterTopic.name(of: topic)] {
            try cluster.createTopic(name, partitions: partitions, replicationFactor: min(brokers, 3))
        }
        if let file = config.text("kafka.mock.bootstrap.file") {
            try Data(cluster.bootstrapServers.utf8).write(to: URL(fileURLWithPath: file))
        }
        say("bootstrap \(cluster.bootstrapServers)")
        say("topics \(topic), \(DeadLetterTopic.name(of: topic)) with \(partitions) partitions on \(brokers) broker(s)")

        for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint, .sigusr1, .sigusr2) {
            switch signal {
            case .sigusr1:
                for id in cluster.brokerIDs { try cluster.takeBrokerDown(id) }
                say("brokers down")
            case .sigusr2:
                for id in cluster.brokerIDs { try cluster.bringBrokerUp(id) }
                say("brokers up")
            default:
                say("stopping")
                return
            }
        }
    }

    /// One line on standard output, written at once (a pipe would otherwise buffer it).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
