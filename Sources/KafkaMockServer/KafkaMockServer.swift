import Events
import Foundation
import Kafka
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
        let environment = Events.Environment(ProcessInfo.processInfo.environment)
        let brokers: Int
        let partitions: Int
        let topic: String
        do {
            brokers = try environment.integer("KAFKA_MOCK_BROKERS", default: 1, range: 1...9)
            partitions = try environment.integer("KAFKA_MOCK_PARTITIONS", default: 6, range: 1...128)
            topic = environment.string("KAFKA_TOPIC", default: "scalable-shop-purchases")
        } catch {
            FileHandle.standardError.write(Data("kafka-mock: \(error)\n".utf8))
            exit(78)
        }
        let cluster = try KafkaMockCluster(brokers: brokers)
        for name in [topic, "\(topic).dlq"] {
            try cluster.createTopic(name, partitions: partitions, replicationFactor: min(brokers, 3))
        }
        if let file = environment.string("KAFKA_MOCK_BOOTSTRAP_FILE") {
            try Data(cluster.bootstrapServers.utf8).write(to: URL(fileURLWithPath: file))
        }
        say("bootstrap \(cluster.bootstrapServers)")
        say("topics \(topic), \(topic).dlq with \(partitions) partitions on \(brokers) broker(s)")

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
