internal import CRdKafka

/// An error from the Kafka binding: what went wrong, in words, and whether trying again can help.
public struct KafkaError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case configuration, timedOut, queueFull, brokersUnavailable, unknownTopic, shutdown, fatal
            case invalidUsage, notAssigned, broker
        }
        private let backing: Backing

        /// A configuration property was rejected; fix the configuration.
        public static let configuration = Code(backing: .configuration)
        /// No answer within the configured bound (for a delivery: `message.timeout.ms`).
        public static let timedOut = Code(backing: .timedOut)
        /// The local produce queue is full: the broker is not keeping up.
        public static let queueFull = Code(backing: .queueFull)
        /// No broker could be reached.
        public static let brokersUnavailable = Code(backing: .brokersUnavailable)
        /// The topic or partition does not exist.
        public static let unknownTopic = Code(backing: .unknownTopic)
        /// The client is shutting down or has shut down; nothing more is sent or received.
        public static let shutdown = Code(backing: .shutdown)
        /// The client can no longer work (for example the idempotent producer lost its guarantee).
        public static let fatal = Code(backing: .fatal)
        /// The binding was called in a way it does not support.
        public static let invalidUsage = Code(backing: .invalidUsage)
        /// An offset was stored for a partition this consumer is not assigned (any more).
        public static let notAssigned = Code(backing: .notAssigned)
        /// Any other error the client library or broker reported.
        public static let broker = Code(backing: .broker)

        public var description: String { backing.rawValue }
    }

    public let code: Code
    /// A readable explanation, naming the librdkafka error where there is one.
    public let message: String
    /// Whether the same operation may succeed if tried again later.
    public let isRetriable: Bool
    /// Whether the client that raised it is unusable and must be recreated.
    public var isFatal: Bool { code == .fatal }
    /// For a failed delivery: whether the broker may have stored the message anyway (librdkafka's
    /// `RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED`: it was sent, and no answer came back). A retry
    /// may then store it twice unless the record carries its own identity.
    public internal(set) var possiblyPersisted: Bool = false

    init(code: Code, message: String, isRetriable: Bool, possiblyPersisted: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.possiblyPersisted = possiblyPersisted
    }

    public var description: String {
        "KafkaError.\(code): \(message)\(isRetriable ? " (retriable)" : "")"
    }

    static func configuration(_ message: String) -> KafkaError {
        KafkaError(code: .configuration, message: message, isRetriable: false)
    }

    static func invalidUsage(_ message: String) -> KafkaError {
        KafkaError(code: .invalidUsage, message: message, isRetriable: false)
    }

    static let shutdown = KafkaError(code: .shutdown, message: "the Kafka client is shut down", isRetriable: true)

    /// The cluster said `topic` does not exist: nothing was sent to it.
    public static func unknownTopic(_ topic: String) -> KafkaError {
        KafkaError(code: .unknownTopic, message: "the topic \(topic) does not exist", isRetriable: true)
    }

    /// Maps a librdkafka error code, keeping its name and text in the message.
    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let name = String(cString: rd_kafka_err2name(err))
        let text = String(cString: rd_kafka_err2str(err))
        let prefix = context.map { "\($0): " } ?? ""
        let (code, retriable) = Self.classify(err)
        self.init(code: code, message: "\(prefix)\(text) [\(name)]", isRetriable: retriable)
    }

    private static func classify(_ err: rd_kafka_resp_err_t) -> (Code, Bool) {
        switch err {
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
            return (.timedOut, true)
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
            return (.queueFull, true)
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE,
            RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
            return (.brokersUnavailable, true)
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return (.unknownTopic, true)
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT, RD_KAFKA_RESP_ERR__DESTROY:
            return (.shutdown, true)
        case RD_KAFKA_RESP_ERR__FATAL:
            return (.fatal, false)
        case RD_KAFKA_RESP_ERR__STATE:
            return (.notAssigned, false)
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
            return (.broker, true)
        default:
            return (.broker, false)
        }
    }
}
