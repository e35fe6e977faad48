import Events
import Foundation
import Kafka
import Logging
import Metrics
import Mongo
import ServiceLifecycle
import ShopHTTP
import Synchronization

/// What `GET /readyz` reports about the ingest.
final class IngestStatus: Sendable {
    private struct State {
        var processed = 0
        var running = false
        var mongoFailure: String?
        var newestReceivedAt: Timestamp?
    }
    private let state = Mutex(State())

    /// `nil` when ingesting normally, else why not.
    var unavailableReason: String? {
        state.withLock { state in
            if !state.running { return "the Kafka consumer is not running" }
            return state.mongoFailure.map { "MongoDB unavailable: \($0)" }
        }
    }

    /// Events consumed and settled (stored, found already stored, or dead-lettered).
    var processed: Int { state.withLock { $0.processed } }
    func settled(_ count: Int) { state.withLock { $0.processed += count } }

    /// `receivedAt` of the newest purchase stored by this process.
    var newestReceivedAt: Timestamp? { state.withLock { $0.newestReceivedAt } }

    func setRunning(_ running: Bool) { state.withLock { $0.running = running } }
    func setMongoFailure(_ reason: String?) { state.withLock { $0.mongoFailure = reason } }
    func stored(receivedAt: Timestamp) {
        state.withLock { state in
            if state.newestReceivedAt.map({ receivedAt > $0 }) ?? true { state.newestReceivedAt = receivedAt }
        }
    }
}

/// Kafka -> MongoDB. Each batch: decode; send what cannot be decoded to the dead-letter topic;
/// write the rest with one unordered bulk insert (`_id` = purchaseId, so a redelivered event is
/// a no-op); only then store and commit the batch's offsets. While MongoDB fails the batch is
/// held and retried with capped exponential backoff, the partitions paused (so nothing more
/// piles up) and readiness reports it; nothing is skipped and nothing committed meanwhile.
struct PurchaseIngest: Service {
    struct Settings: Sendable {
        var batchSize = 500
        var batchWait: Duration = .milliseconds(50)
        var retryInitial: Duration = .milliseconds(100)
        var retryMaximum: Duration = .seconds(5)
    }

    let consumer: KafkaConsumer
    let deadLetters: KafkaProducer
    let deadLetterTopic: String
    let store: any PurchaseStore
    let settings: Settings
    let status: IngestStatus
    let logger: Logger

    private let consumed: Counter
    private let inserted: Counter
    private let duplicates: Counter
    private let deadLettered: Counter
    private let batchSizes: Recorder
    private let writeLatency: Timer
    private let writeFailures: Counter

    init(
        consumer: KafkaConsumer, deadLetters: KafkaProducer, topic: String, store: any PurchaseStore,
        settings: Settings = Settings(), status: IngestStatus, logger: Logger
    ) {
        // A metric made before the bootstrap would stay a no-op for good.
        _ = ShopMetrics.bootstrap()
        consumed = Counter(label: "cmapi_events_consumed_total")
        inserted = Counter(label: "cmapi_purchases_inserted_total")
        duplicates = Counter(label: "cmapi_purchases_duplicate_total")
        deadLettered = Counter(label: "cmapi_events_dead_lettered_total")
        batchSizes = Recorder(label: "cmapi_batch_size")
        writeLatency = Timer(label: "cmapi_mongo_write_duration_seconds")
        writeFailures = Counter(label: "cmapi_mongo_write_failures_total")
        self.consumer = consumer
        self.deadLetters = deadLetters
        self.deadLetterTopic = "\(topic).dlq"
        self.store = store
        self.settings = settings
        self.status = status
        self.logger = logger
    }

    /// Runs until graceful shutdown: the batch in hand is finished and committed, then the
    /// consumer closes (committing again and leaving the group).
    func run() async throws {
        status.setRunning(true)
        defer { status.setRunning(false) }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let batch: [KafkaConsumerMessage]
            do {
                batch = try await consumer.poll(maxMessages: settings.batchSize, maxWait: settings.batchWait)
            } catch {
                if error.code == .shutdown { break }
                logger.error("Kafka poll failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard !batch.isEmpty else { continue }
            await process(batch)
        }
        await consumer.close()
    }

    /// Stores the batch (retrying while MongoDB fails) and then commits its offsets.
    func process(_ firstBatch: [KafkaConsumerMessage]) async {
        var batch = firstBatch
        var purchases = await prepare(batch)
        var delay = settings.retryInitial
        var paused = false
        while true {
            do {
                try await insert(purchases)
                break
            } catch {
                writeFailures.increment()
                status.setMongoFailure((error as? MongoError)?.message ?? "\(error)")
                logger.warning(
                    "MongoDB write failed; holding the batch and retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(delay)", "batch": "\(batch.count)"])
                if Task.isShuttingDownGracefully || Task.isCancelled {
                    // Nothing of the batch is committed: the next owner stores it.
                    return
                }
                // Keep serving the group (a rebalance must not wait for MongoDB); paused
                // partitions deliver nothing more, and whatever was fetched before the pause
                // joins the held batch behind it, in order.
                paused = true
                _ = try? await consumer.pause()
                let more = (try? await consumer.poll(maxMessages: settings.batchSize, maxWait: delay)) ?? []
                if !more.isEmpty {
                    batch += more
                    purchases += await prepare(more)
                }
                delay = min(delay * 2, settings.retryMaximum)
            }
        }
        status.setMongoFailure(nil)
        await commit(batch)
        status.settled(batch.count)
        if paused {
            _ = try? await consumer.resume()
            logger.notice("MongoDB writes succeed again; consuming resumed")
        }
    }

    /// Decodes a batch; what cannot be decoded or validated goes to the dead-letter topic.
    private func prepare(_ messages: [KafkaConsumerMessage]) async -> [StoredPurchase] {
        consumed.increment(by: messages.count)
        batchSizes.record(messages.count)
        var purchases: [StoredPurchase] = []
        purchases.reserveCapacity(messages.count)
        for message in messages {
            do {
                let event = try PurchaseEvent(kafkaValue: message.value)
                purchases.append(StoredPurchase(event: event, partition: message.partition, offset: message.offset))
            } catch {
                await deadLetter(message, reason: error.description)
            }
        }
        return purchases
    }

    /// One unordered bulk insert; purchases already stored are counted, not written again.
    private func insert(_ purchases: [StoredPurchase]) async throws {
        guard !purchases.isEmpty else { return }
        let start = DispatchTime.now()
        let result = try await store.insert(purchases)
        writeLatency.recordInterval(since: start)
        inserted.increment(by: result.inserted)
        duplicates.increment(by: result.alreadyStored)
        if let newest = purchases.map(\.event.receivedAt).max() { status.stored(receivedAt: newest) }
    }

    /// Sends a message that cannot be stored to `<topic>.dlq`, unchanged, with the reason and
    /// where it came from in headers; waits for the ack, retrying, because its offset is about
    /// to be committed and the message must not be lost.
    private func deadLetter(_ message: KafkaConsumerMessage, reason: String) async {
        let headers =
            message.headers + [
                KafkaHeader(name: "dlq-reason", value: Array(reason.utf8)),
                KafkaHeader(
                    name: "dlq-source", value: Array("\(message.topic)[\(message.partition)]@\(message.offset)".utf8)),
            ]
        var delay = settings.retryInitial
        while true {
            do {
                _ = try await deadLetters.send(
                    topic: deadLetterTopic, key: message.key, value: message.value, headers: headers)
                deadLettered.increment()
                logger.warning(
                    "dead-lettered an event",
                    metadata: [
                        "reason": "\(reason)", "partition": "\(message.partition)",
                        "offset": "\(message.offset)",
                    ])
                return
            } catch {
                logger.error("dead-letter topic unavailable; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, settings.retryMaximum)
                if Task.isCancelled { return }
            }
        }
    }

    /// Stores and commits the offsets of `batch` for the partitions still assigned; those
    /// taken away meanwhile are re-read by their new owner (already stored, so a no-op).
    private func commit(_ batch: [KafkaConsumerMessage]) async {
        do {
            let assigned = Set(try await consumer.assignment())
            try consumer.markProcessed(batch.filter { assigned.contains($0.topicPartition) })
            try await consumer.commit()
        } catch {
            // Not a loss: uncommitted messages are delivered again and stored once.
            logger.warning("Kafka commit failed; the batch will be re-read", metadata: ["error": "\(error)"])
        }
    }
}
