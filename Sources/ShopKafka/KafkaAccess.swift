/// What one identity does on Kafka, in the terms of Kafka's simple authorizer (and Strimzi's
/// `KafkaUser` ACLs): the cluster's operator grants exactly this (`cm-server kafka-acls`,
/// `cm-api kafka-acls`). Each binary builds it from the same names its Kafka clients are given,
/// and the chart tests hold `k8s/kafka/cluster.yaml` to it (docs/SECURITY.md).
public struct KafkaAccess: Sendable, Equatable {
    public enum ResourceType: String, Sendable, Comparable {
        case topic, group, cluster

        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    public struct Resource: Hashable, Sendable, Comparable {
        public let type: ResourceType
        /// `nil` for the cluster.
        public let name: String?

        public static func < (a: Self, b: Self) -> Bool {
            (a.type, a.name ?? "") < (b.type, b.name ?? "")
        }
    }

    /// Operations (Kafka's names: Read, Write, Describe, IdempotentWrite) per resource.
    public private(set) var operations: [Resource: Set<String>] = [:]

    public init() {}

    private mutating func allow(_ type: ResourceType, _ name: String?, _ granted: String...) {
        operations[Resource(type: type, name: name), default: []].formUnion(granted)
    }

    /// An idempotent producer's sends (ProduceRequest, and the producer id it asks for).
    public mutating func produce(to topic: String) {
        allow(.topic, topic, "Write", "Describe")
        allow(.cluster, nil, "IdempotentWrite")
    }

    /// A group member's reads and commits; `group` is `nil` for a reader that assigns partitions
    /// itself and commits nothing (no request reaches a group coordinator).
    public mutating func consume(_ topic: String, group: String?) {
        allow(.topic, topic, "Read", "Describe")
        if let group { allow(.group, group, "Read", "Describe") }
    }

    /// Metadata and offset queries only (the topic watch, watermarks).
    public mutating func describe(_ topic: String) {
        allow(.topic, topic, "Describe")
    }

    /// Strimzi's `spec.authorization.acls` entries, as JSON (which YAML also reads), sorted.
    public var strimziACLs: String {
        let entries = operations.keys.sorted().map { resource in
            let name = resource.name.map { #", "name": "\#($0)", "patternType": "literal""# } ?? ""
            let granted = operations[resource, default: []].sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            return #"  {"resource": {"type": "\#(resource.type.rawValue)"\#(name)}, "operations": [\#(granted)]}"#
        }
        return "[\n" + entries.joined(separator: ",\n") + "\n]"
    }
}
