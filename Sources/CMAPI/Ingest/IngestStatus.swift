import Kafka
import PurchaseDomain
import Synchronization

/// How the ingest is doing: what `GET /readyz/ingest`, `cmapi_ingest_ready` and the freshness
/// gauges report. It never gates `GET /readyz`: a write problem must not take the reads down.
final class IngestStatus: Sendable {
    private struct State {
        var processed = 0
        var partitions: [KafkaTopicPartition: PartitionProgress] = [:]
        var running = false
        var writeFailure: (reason: String, permanent: Bool)?
        var deadLetterFailure: String?
        var newestReceivedAt: Timestamp?
        var held = 0
    }
    private let state = Mutex(State())

    /// `nil` when ingesting normally, else why not.
    var unavailableReason: String? {
        state.withLock { state in
            if !state.running { return "the Kafka consumer is not running" }
            if let failure = state.writeFailure {
                return failure.permanent
                    ? "MongoDB refuses writes and retrying will not help until the cause is fixed: \(failure.reason)"
                    : "MongoDB unavailable: \(failure.reason)"
            }
            return state.deadLetterFailure.map { "the dead-letter topic refuses records; retrying: \($0)" }
        }
    }

    /// Events consumed and settled (stored, found already stored, or dead-lettered).
    var processed: Int { state.withLock { $0.processed } }

    /// Messages in the batch held while MongoDB refuses it, 0 when none is held
    /// (`cmapi_ingest_held_messages`): never more than a batch, however long the outage.
    var held: Int { state.withLock { $0.held } }
    func setHeld(_ count: Int) { state.withLock { $0.held = count } }

    /// Per partition, the Kafka timestamps (milliseconds) freshness is computed from.
    private struct PartitionProgress {
        /// The oldest event read and not yet settled.
        var oldestInHand: Int64?
        /// The newest event settled.
        var newestSettled: Int64?
    }

    /// Messages read from Kafka, not yet settled.
    func read(_ messages: [KafkaConsumerMessage]) {
        state.withLock { state in
            for message in messages {
                guard let time = message.timestampMilliseconds else { continue }
                let oldest = state.partitions[message.topicPartition]?.oldestInHand
                state.partitions[message.topicPartition, default: .init()].oldestInHand = min(oldest ?? time, time)
            }
        }
    }

    /// Forgets the progress of partitions no longer assigned: their freshness is their new
    /// owner's to report, and an event held here when they were taken away is no longer held.
    func retain(_ assigned: Set<KafkaTopicPartition>) {
        state.withLock { state in
            state.partitions = state.partitions.filter { assigned.contains($0.key) }
        }
    }

    /// Messages settled (stored, found stored or dead-lettered) and committed.
    func settled(_ messages: [KafkaConsumerMessage]) {
        state.withLock { state in
            state.processed += messages.count
            for message in messages {
                var progress = state.partitions[message.topicPartition, default: .init()]
                progress.oldestInHand = nil
                if let time = message.timestampMilliseconds {
                    progress.newestSettled = max(progress.newestSettled ?? time, time)
                }
                state.partitions[message.topicPartition] = progress
            }
        }
    }

    /// Freshness: how old, in seconds, the oldest event of `partition` not yet stored is. Exact
    /// for events read and held (a batch being written or retried); for events not read yet
    /// (`lag` > 0 with nothing held) it is the age of the newest settled one, which the next
    /// event is younger than; 0 when nothing is behind.
    func oldestUnstoredAge(_ partition: KafkaTopicPartition, lag: Int64, now: Timestamp = .now) -> Double {
        let progress = state.withLock { $0.partitions[partition] }
        let since = progress?.oldestInHand ?? (lag > 0 ? progress?.newestSettled : nil)
        guard let since else { return 0 }
        return max(0, now.seconds(since: Timestamp(millisecondsSinceEpoch: since)))
    }

    /// `receivedAt` of the newest purchase stored by this process.
    var newestReceivedAt: Timestamp? { state.withLock { $0.newestReceivedAt } }

    func setRunning(_ running: Bool) { state.withLock { $0.running = running } }
    func setWriteFailure(_ reason: String?, permanent: Bool = false) {
        state.withLock { $0.writeFailure = reason.map { ($0, permanent) } }
    }
    func setDeadLetterFailure(_ reason: String?) { state.withLock { $0.deadLetterFailure = reason } }
    func stored(receivedAt: Timestamp) {
        state.withLock { state in
            if state.newestReceivedAt.map({ receivedAt > $0 }) ?? true { state.newestReceivedAt = receivedAt }
        }
    }
}
