/// The dead-letter topic's vocabulary (docs/CONTRACT.md, "Kafka"): its name and the headers cm-api
/// and `cm-api dlq` put on its records. Defined once, here, for the ingest, the operator's tool,
/// kafka-mock and the tests.
public enum DeadLetterTopic {
    /// `<topic>.dlq`: where the events of `topic` that cannot be stored go.
    public static func name(of topic: String) -> String {
        topic + suffix
    }

    public static let suffix = ".dlq"

    /// Why a record is there: the `cause` label of `cmapi_events_dead_lettered_total`, and how its
    /// `dlq-reason` starts (what `cm-api dlq --reason` selects on).
    public enum Cause: String, CaseIterable, Sendable {
        /// Not a purchase event: not JSON, the wrong schema, a rule broken.
        case invalidEvent = "invalid_event"
        /// MongoDB refused the purchase for good (a validator).
        case refusedByMongoDB = "refused_by_mongodb"
        /// Its `Idempotency-Key` was used for another purchase, stored first.
        case idempotencyConflict = "idempotency_conflict"

        /// The start of the `dlq-reason` of this cause's records (an invalid event's reason is
        /// the decoder's own).
        public var reasonPrefix: String {
            switch self {
            case .invalidEvent: ""
            case .refusedByMongoDB: "MongoDB refused the purchase: "
            case .idempotencyConflict: "Idempotency-Key conflict: "
            }
        }
    }

    /// The headers of a dead letter, beside the record's own (kept unchanged).
    public enum Header {
        /// Why cm-api could not store the record.
        public static let reason = "dlq-reason"
        /// Where it was read: `topic[partition]@offset`.
        public static let source = "dlq-source"
        /// MongoDB's error code, when MongoDB refused the purchase.
        public static let mongoDBCode = "dlq-mongodb-code"
        /// Set on a bounded trace (the record was too large to copy whole): what was cut.
        public static let trace = "dlq-trace"
        /// On a record redriven to the purchases topic: how many times its lineage was redriven.
        public static let redriveCount = "dlq-redrive-count"
        /// On a record redriven to the purchases topic: the letter it came from.
        public static let redrivenFrom = "dlq-redriven-from"
        /// Set on the redrive's own records on the dead-letter topic (never a letter): a
        /// ``Marker`` raw value.
        public static let marker = "dlq-marker"
        /// On a marker: the letter it is about, `topic[partition]@offset`.
        public static let letter = "dlq-letter"
        /// On a marker: the redrive run that claimed the letter (a UUID).
        public static let run = "dlq-run"
        /// On a `redriven` marker: where the letter went, `topic[partition]@offset`.
        public static let redrivenTo = "dlq-redriven-to"
    }

    /// The records `cm-api dlq redrive` adds to a letter's own partition, so that every run, however
    /// many run at once, sends each letter at most once: the first claim of a letter in offset order
    /// owns it; only its owner's `released` or `redriven` settles it (docs/RELIABILITY.md).
    public enum Marker: String, Sendable {
        /// A run is about to send the letter, if its claim is the first.
        case claim
        /// The owning run sent it: the letter is handled.
        case redriven
        /// The owning run could not send it (or an operator gave up an unfinished run's claim):
        /// the letter is unhandled again.
        case released
    }
}
