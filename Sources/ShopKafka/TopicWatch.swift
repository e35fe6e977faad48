public import Kafka
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// Asks the cluster every `interval` whether the topics a service needs exist, so that a deleted
/// topic is seen at once: librdkafka alone would hold every purchase for the whole delivery
/// timeout, and a consumer of a deleted topic quietly has no partitions (and no lag to alert on).
///
/// A topic counts as missing only when the cluster answers that it does not exist; no answer
/// at all (the brokers down) is another problem, reported elsewhere, and leaves the last verdict
/// standing. Exports `kafka_topic_missing{shop_service,topic}` (1 while the topic is missing).
public final class TopicWatch: Service, Sendable {
    public typealias Lookup = @Sendable (String) async throws(KafkaError) -> KafkaTopicMetadata

    public let topics: [String]
    /// The service watching: the `shop_service` label, as on `service_ready`.
    public let service: String
    public let interval: Duration
    private let lookup: Lookup
    private let logger: Logger
    private let missing = Mutex<Set<String>>([])

    /// - Parameters:
    ///   - topics: the topics the service reads or writes.
    ///   - service: the service's name (`cm-server`, `cm-api`).
    ///   - lookup: asks the cluster about one topic (a producer's or consumer's `topicMetadata`).
    public init(
        topics: [String], service: String, interval: Duration = .seconds(5), logger: Logger,
        lookup: @escaping Lookup
    ) {
        self.topics = topics
        self.service = service
        self.interval = interval
        self.lookup = lookup
        self.logger = logger
    }

    /// `nil` while every topic exists (or nothing says otherwise), else the reason.
    public var missingReason: String? {
        let names = missing.withLock { $0 }
        guard !names.isEmpty else { return nil }
        let list = topics.filter(names.contains).joined(separator: ", ")
        return names.count == 1 ? "the Kafka topic \(list) does not exist" : "the Kafka topics \(list) do not exist"
    }

    /// Whether `topic` was found missing by the latest check.
    public func isMissing(_ topic: String) -> Bool {
        missing.withLock { $0.contains(topic) }
    }

    /// Asks once about every topic and records the answers.
    public func check() async {
        for topic in topics {
            let found: Bool
            do {
                _ = try await lookup(topic)
                found = true
            } catch {
                guard error.code == .unknownTopic else { continue }
                found = false
            }
            let changed = missing.withLock { missing in
                found ? missing.remove(topic) != nil : missing.insert(topic).inserted
            }
            // Made here rather than at init: a metric made before the process bootstraps its
            // metrics system would stay a no-op.
            Gauge(label: "kafka_topic_missing", dimensions: [("shop_service", service), ("topic", topic)]).record(
                found ? 0 : 1)
            if changed && found {
                logger.notice("the Kafka topic exists again", metadata: ["topic": "\(topic)"])
            } else if changed {
                logger.error(
                    "the Kafka topic does not exist: nothing can be produced to or consumed from it until it is created",
                    metadata: ["topic": "\(topic)"])
            }
        }
    }

    /// Checks every `interval` until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.check()
                try? await Task.sleep(for: self.interval)
            }
        }
    }
}
