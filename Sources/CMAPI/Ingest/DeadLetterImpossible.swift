import Kafka

/// A record that could be neither dead-lettered nor traced on the dead-letter topic (the
/// dead-letter producer is broken for good): the ingest stops, and the process with it, rather
/// than commit the record without a trace or hold its partition silently.
struct DeadLetterImpossible: Error, CustomStringConvertible {
    var source: String
    var reason: String
    var refusal: KafkaError

    var description: String {
        "cannot dead-letter \(source) (\(reason)): the dead-letter producer refused even a bounded trace: \(refusal)"
    }

    /// The batch span's `error.type`.
    static func errorType(_ error: Self) -> String { "dead_letter_impossible" }
}
