import Foundation
import Kafka
import Logging
import Metrics
import Mongo
import PurchaseDomain
import PurchaseWire
import ServiceLifecycle
import ShopKafka
import ShopService
import Synchronization
import Tracing

/// Kafka -> MongoDB. Each batch: decode; send what cannot be decoded to the dead-letter topic;
/// write the rest with one unordered bulk insert (`_id` = purchaseId, so a redelivered event is
/// a no-op); send what MongoDB refuses for good to the dead-letter topic too; only then store
/// and commit the batch's offsets. While MongoDB fails the batch is held and retried (soon after
/// a transient error, slowly after a permanent one), the partitions paused (so nothing more
/// piles up) and readiness reports it; nothing is skipped and nothing committed meanwhile.
/// docs/RELIABILITY.md describes the classes.
struct PurchaseIngest: Service {
    struct Settings: Sendable {
        var batchSize = 500
        var batchWait: Duration = .milliseconds(50)
        /// How long one poll waits for the first event of a batch: an idle ingest wakes once a
        /// second instead of every `batchWait` (20 times), and an event is still taken as it
        /// arrives. It also bounds how late a graceful shutdown is noticed while idle.
        var idleWait: Duration = .seconds(1)
        var retryInitial: Duration = .milliseconds(100)
        var retryMaximum: Duration = .seconds(5)
        /// Between retries after an error no retry is expected to fix (authentication, ...).
        var permanentRetry: Duration = .seconds(15)
        /// How much of a record's key and value a trace keeps when the dead-letter producer
        /// refuses the full copy (too large once the headers are added).
        var traceBytes = 1024
    }

    typealias DeadLetterCause = DeadLetterTopic.Cause

    let consumer: KafkaConsumer
    let deadLetters: KafkaProducer
    let topic: String
    /// The consumer group, for the batch spans.
    let consumerGroup: String?
    let deadLetterTopic: String
    let store: any PurchaseStore
    let settings: Settings
    let status: IngestStatus
    let logger: Logger

    private let consumed: Counter
    private let inserted: Counter
    private let duplicates: Counter
    private let deadLettered: [DeadLetterCause: Counter]
    private let deadLetterTraces: Counter
    private let batchSizes: Recorder
    private let writeLatency: Timer
    /// Each event's age when the first bulk insert of its batch starts, from cm-server's receive
    /// time (its clock): Kafka, the poll, the batch window, and the time the ingest spent writing
    /// earlier batches meanwhile.
    private let ageAtWrite: Timer
    /// That age without the time spent writing earlier batches: cm-api's own share of an event's
    /// way to MongoDB (Kafka, the poll, the batch window), whatever MongoDB's pace.
    private let ingestDelay: Timer
    /// The recent writes' wall-clock spans, for ``ingestDelay``.
    private let recentWrites = RecentWrites()
    private let transientWriteFailures: Counter
    private let permanentWriteFailures: Counter
    private let refusedWrites: Counter
    /// Messages polled while a batch was held and handed back to be read again.
    private let handedBack: Counter

    init(
        consumer: KafkaConsumer, deadLetters: KafkaProducer, topic: String, store: any PurchaseStore,
        consumerGroup: String? = nil, settings: Settings = Settings(), status: IngestStatus, logger: Logger
    ) {
        // A metric made before the bootstrap would stay a no-op for good.
        _ = ShopMetrics.bootstrap()
        consumed = Counter(label: "cmapi_events_consumed_total")
        inserted = Counter(label: "cmapi_purchases_inserted_total")
        duplicates = Counter(label: "cmapi_purchases_duplicate_total")
        deadLettered = Dictionary(
            uniqueKeysWithValues: DeadLetterCause.allCases.map { cause in
                (cause, Counter(label: "cmapi_events_dead_lettered_total", dimensions: [("cause", cause.rawValue)]))
            })
        deadLetterTraces = Counter(label: "cmapi_dead_letter_traces_total")
        batchSizes = Recorder(label: "cmapi_batch_size")
        writeLatency = Timer(label: "cmapi_mongo_write_duration_seconds")
        ageAtWrite = Timer(label: "cmapi_event_age_at_write_seconds")
        ingestDelay = Timer(label: "cmapi_event_ingest_delay_seconds")
        transientWriteFailures = Counter(
            label: "cmapi_mongo_write_failures_total", dimensions: [("class", "transient")])
        permanentWriteFailures = Counter(
            label: "cmapi_mongo_write_failures_total", dimensions: [("class", "permanent")])
        refusedWrites = Counter(label: "cmapi_mongo_write_failures_total", dimensions: [("class", "refused")])
        handedBack = Counter(label: "cmapi_ingest_handed_back_messages_total")
        self.consumer = consumer
        self.deadLetters = deadLetters
        self.topic = topic
        self.consumerGroup = consumerGroup
        self.deadLetterTopic = DeadLetterTopic.name(of: topic)
        self.store = store
        self.settings = settings
        self.status = status
        self.logger = logger
    }

    /// Runs until graceful shutdown: the batch in hand is finished and committed, then the
    /// consumer closes (committing again and leaving the group).
    /// - Throws: ``DeadLetterImpossible`` when a record can be neither stored nor traced.
    func run() async throws {
        status.setRunning(true)
        defer { status.setRunning(false) }
        do {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let batch: [KafkaConsumerMessage]
                do {
                    batch = try await consumer.poll(
                        maxMessages: settings.batchSize, maxWait: settings.batchWait,
                        firstMessageWait: max(settings.idleWait, settings.batchWait))
                } catch {
                    if error.code == .shutdown { break }
                    logger.error("Kafka poll failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                guard !batch.isEmpty else { continue }
                status.read(batch)
                try await processTraced(batch)
            }
        } catch {
            logger.critical(
                "stopping: a record can be neither stored nor dead-lettered", metadata: ["error": "\(error)"])
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// ``process(_:)`` in one CONSUMER span `process <topic>`, a trace of its own linked to each
    /// record's creation context (the messaging conventions' rule for batches); the MongoDB
    /// writes and dead-letter sends are its children. The batch is traced when one of its records'
    /// traces is sampled, else as the head sampler decides for a new trace.
    func processTraced(_ batch: [KafkaConsumerMessage]) async throws(DeadLetterImpossible) {
        try await ShopTracing.withSpan(
            "process \(topic)", ofKind: .consumer, context: KafkaTracing.newTrace(following: batch.lazy.map(\.headers)),
            errorType: DeadLetterImpossible.errorType
        ) { span throws(DeadLetterImpossible) in
            if let span {
                KafkaTracing.setCommon(span, topic: topic, operation: "process", type: "process")
                span.updateAttributes { attributes in
                    attributes["messaging.batch.message_count"] = batch.count
                    attributes["messaging.consumer.group.name"] = consumerGroup
                }
                for message in batch {
                    guard let creation = KafkaTracing.context(of: message.headers) else { continue }
                    span.addLink(
                        SpanLink(
                            context: creation,
                            attributes: [
                                "messaging.destination.partition.id": .string("\(message.partition)"),
                                "messaging.kafka.offset": .int64(message.offset),
                            ]))
                }
            }
            try await process(batch)
        }
    }

    /// Stores the batch (retrying while MongoDB fails), dead-letters what MongoDB refuses, and
    /// then commits its offsets. Returns without committing when shutdown comes first.
    ///
    /// While the write fails the batch is held, and only it: every partition is paused (those a
    /// rebalance assigns meanwhile too), anything polled meanwhile is handed back (its partition
    /// rewound to it, so it is delivered again after the outage, never kept), and the messages of
    /// partitions taken away are dropped (their new owner reads them). However long the outage
    /// and whatever the group does, the memory held is one batch.
    func process(_ firstBatch: [KafkaConsumerMessage]) async throws(DeadLetterImpossible) {
        var batch = firstBatch
        guard var purchases = try await prepare(batch) else { return }
        let now = Timestamp.now.millisecondsSinceEpoch
        for purchase in purchases {
            let received = purchase.event.receivedAt.millisecondsSinceEpoch
            let age = max(0, now - received)
            ageAtWrite.recordMilliseconds(age)
            ingestDelay.recordMilliseconds(max(0, age - recentWrites.writing(from: received, to: now)))
        }
        var delay = settings.retryInitial
        var holding = false
        defer { status.setHeld(0) }
        var conflicts: [IdempotencyConflict] = []
        while true {
            let failure: PurchaseWriteFailure
            do {
                conflicts = try await insert(purchases).conflicts
                break
            } catch {
                failure = error
            }
            if case .refused(let refused, let written) = failure {
                refusedWrites.increment(by: refused.count)
                count(written, of: purchases)
                conflicts = written.conflicts
                guard try await deadLetterRefused(refused, of: purchases, in: batch) else { return }
                break
            }
            let permanent = if case .permanent = failure { true } else { false }
            status.setWriteFailure(failure.description, permanent: permanent)
            if permanent {
                permanentWriteFailures.increment()
                logger.error(
                    "MongoDB refuses writes; retrying will not help until the cause is fixed. Holding the batch",
                    metadata: [
                        "error": "\(failure)", "retryIn": "\(settings.permanentRetry)", "batch": "\(batch.count)",
                    ])
            } else {
                transientWriteFailures.increment()
                logger.warning(
                    "MongoDB write failed; holding the batch and retrying",
                    metadata: ["error": "\(failure)", "retryIn": "\(delay)", "batch": "\(batch.count)"])
            }
            if !holding {
                holding = true
                // Keep serving the group (a rebalance must not wait for MongoDB), fetch nothing.
                _ = try? await consumer.pause()
            }
            status.setHeld(batch.count)
            let wait = permanent ? settings.permanentRetry : delay
            let until = ContinuousClock.now.advanced(by: wait)
            while ContinuousClock.now < until {
                // Nothing of the batch is committed: the next owner stores it.
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                let slice = min(ContinuousClock.now.duration(to: until), settings.retryMaximum, .seconds(1))
                let more = (try? await consumer.poll(maxMessages: settings.batchSize, maxWait: slice)) ?? []
                let kept = await handBack(more)
                if !kept.isEmpty {
                    // They could not be handed back: they join the batch behind what it holds, in
                    // order, so that nothing is skipped (as before the rewind existed).
                    status.read(kept)
                    batch += kept
                    guard let prepared = try await prepare(kept) else { return }
                    purchases += prepared
                }
            }
            // Partitions taken away meanwhile are their new owner's: their messages are dropped
            // here (not committed, so not lost), whatever happens to the write.
            if let assigned = try? consumer.assignment().reduce(into: Set(), { $0.insert($1) }) {
                let kept = batch.filter { assigned.contains($0.topicPartition) }
                if kept.count < batch.count {
                    logger.notice(
                        "partitions were taken away while the batch was held; their messages are left to their new owner",
                        metadata: ["dropped": "\(batch.count - kept.count)"])
                    batch = kept
                    let places = Set(kept.map { Place(partition: $0.partition, offset: $0.offset) })
                    purchases = purchases.filter { places.contains(Place(partition: $0.partition, offset: $0.offset)) }
                }
                status.retain(assigned)
            }
            delay = min(delay * 2, settings.retryMaximum)
        }
        status.setWriteFailure(nil)
        guard try await deadLetterConflicts(conflicts, of: purchases, in: batch) else { return }
        await commit(batch)
        status.settled(batch)
        if holding {
            _ = try? await consumer.resume()
            logger.notice("MongoDB writes succeed again; consuming resumed")
        }
    }

    /// A message's place in the (one) topic.
    private struct Place: Hashable {
        var partition: Int32
        var offset: Int64
    }

    /// Messages polled while the batch is held (fetched just before the pause, or from a
    /// partition assigned as it came): not kept, each partition rewound to the first of them so
    /// that they come again once consuming resumes.
    /// - Returns: the messages that could not be handed back (the rewind failed): the caller
    ///   must keep them, as the consumer's position is past them.
    private func handBack(_ messages: [KafkaConsumerMessage]) async -> [KafkaConsumerMessage] {
        guard !messages.isEmpty else { return [] }
        var first: [KafkaTopicPartition: Int64] = [:]
        for message in messages {
            first[message.topicPartition] = min(first[message.topicPartition] ?? message.offset, message.offset)
        }
        do {
            try await consumer.seek(first)
            handedBack.increment(by: messages.count)
            return []
        } catch {
            logger.warning(
                "could not hand messages back while holding a batch; they join the held batch",
                metadata: ["error": "\(error)", "messages": "\(messages.count)"])
            return messages
        }
    }

    /// Decodes messages; what cannot be decoded or validated goes to the dead-letter topic.
    /// `nil` when shutdown came before every such message was dead-lettered.
    private func prepare(_ messages: [KafkaConsumerMessage]) async throws(DeadLetterImpossible) -> [StoredPurchase]? {
        consumed.increment(by: messages.count)
        batchSizes.record(messages.count)
        var purchases: [StoredPurchase] = []
        purchases.reserveCapacity(messages.count)
        for message in messages {
            do {
                let event = try PurchaseEvent(kafkaValue: message.value)
                purchases.append(StoredPurchase(event: event, partition: message.partition, offset: message.offset))
            } catch {
                guard try await deadLetter(message, reason: error.description, cause: .invalidEvent) else { return nil }
            }
        }
        return purchases
    }

    /// One unordered bulk insert; purchases already stored are counted, not written again.
    private func insert(_ purchases: [StoredPurchase]) async throws(PurchaseWriteFailure) -> PurchaseInsertResult {
        guard !purchases.isEmpty else { return PurchaseInsertResult(inserted: 0, alreadyStored: 0) }
        let start = DispatchTime.now()
        let startedAt = Timestamp.now.millisecondsSinceEpoch
        defer { recentWrites.add(from: startedAt, to: Timestamp.now.millisecondsSinceEpoch) }
        let result = try await store.insert(purchases)
        writeLatency.recordInterval(since: start)
        count(result, of: purchases)
        return result
    }

    private func count(_ result: PurchaseInsertResult, of purchases: [StoredPurchase]) {
        inserted.increment(by: result.inserted)
        duplicates.increment(by: result.alreadyStored - result.conflicts.count)
        if let newest = purchases.map(\.event.receivedAt).max() { status.stored(receivedAt: newest) }
    }

    /// Sends the records of purchases whose `Idempotency-Key` was used for another purchase,
    /// stored first, to the dead-letter topic. `false` when shutdown came first.
    private func deadLetterConflicts(
        _ conflicts: [IdempotencyConflict], of purchases: [StoredPurchase], in batch: [KafkaConsumerMessage]
    ) async throws(DeadLetterImpossible) -> Bool {
        for conflict in conflicts where purchases.indices.contains(conflict.index) {
            guard let message = Self.message(of: purchases[conflict.index], in: batch) else { continue }
            let sent = try await deadLetter(
                message, reason: DeadLetterCause.idempotencyConflict.reasonPrefix + conflict.reason,
                cause: .idempotencyConflict)
            guard sent else { return false }
        }
        return true
    }

    /// The record a purchase was read from.
    private static func message(of purchase: StoredPurchase, in batch: [KafkaConsumerMessage]) -> KafkaConsumerMessage?
    {
        batch.first { $0.partition == purchase.partition && $0.offset == purchase.offset }
    }

    /// Sends the records of the purchases MongoDB refused to the dead-letter topic, with its
    /// code and reason. `false` when shutdown came first.
    private func deadLetterRefused(
        _ refused: [RefusedPurchase], of purchases: [StoredPurchase], in batch: [KafkaConsumerMessage]
    ) async throws(DeadLetterImpossible) -> Bool {
        var messages: [KafkaTopicPartition: [Int64: KafkaConsumerMessage]] = [:]
        for message in batch { messages[message.topicPartition, default: [:]][message.offset] = message }
        for refusal in refused where purchases.indices.contains(refusal.index) {
            let purchase = purchases[refusal.index]
            guard
                let message = messages.first(where: { $0.key.partition == purchase.partition })?.value[purchase.offset]
            else { continue }
            let sent = try await deadLetter(
                message, reason: DeadLetterCause.refusedByMongoDB.reasonPrefix + refusal.reason,
                cause: .refusedByMongoDB,
                headers: [
                    KafkaHeader(name: DeadLetterTopic.Header.mongoDBCode, value: Array(String(refusal.code).utf8))
                ])
            guard sent else { return false }
        }
        return true
    }

    /// Sends a message that cannot be stored to `<topic>.dlq`, unchanged, with the reason and
    /// where it came from in headers; waits for the ack, retrying, because its offset is about
    /// to be committed and the message must not be lost. When the dead-letter producer refuses
    /// the copy for good (too large once the headers are added), a bounded trace goes instead.
    /// - Returns: `false` when shutdown came first (the batch must then not be committed).
    /// - Throws: ``DeadLetterImpossible`` when not even the trace can be sent.
    private func deadLetter(
        _ message: KafkaConsumerMessage, reason: String, cause: DeadLetterCause, headers extra: [KafkaHeader] = []
    ) async throws(DeadLetterImpossible) -> Bool {
        let source = "\(message.topic)[\(message.partition)]@\(message.offset)"
        let headers =
            message.headers + [
                KafkaHeader(name: DeadLetterTopic.Header.reason, value: Array(reason.utf8)),
                KafkaHeader(name: DeadLetterTopic.Header.source, value: Array(source.utf8)),
            ] + extra
        let copy = await sendToDeadLetters(key: message.key, value: message.value, headers: headers)
        switch copy {
        case .sent:
            deadLettered[cause]?.increment()
            logger.warning(
                "dead-lettered an event",
                metadata: ["reason": "\(reason)", "source": "\(source)"])
            return true
        case .shutdown:
            return false
        case .refused(let refusal):
            // What cannot go as it is still leaves a trace: the start of the record, the reason,
            // where it came from and why the copy was refused.
            let limit = settings.traceBytes
            let trace =
                extra + [
                    KafkaHeader(name: DeadLetterTopic.Header.reason, value: Array(reason.utf8.prefix(limit))),
                    KafkaHeader(name: DeadLetterTopic.Header.source, value: Array(source.utf8)),
                    KafkaHeader(
                        name: DeadLetterTopic.Header.trace,
                        value: Array(
                            ("the full record was refused (\(refusal.message)): key \(message.key?.count ?? 0) bytes, "
                                + "value \(message.value.count) bytes, \(message.headers.count) headers; "
                                + "this trace keeps the first \(limit) bytes of the key and the value").utf8)),
                ]
            let traced = await sendToDeadLetters(
                key: message.key.map { Array($0.prefix(limit)) }, value: Array(message.value.prefix(limit)),
                headers: trace)
            switch traced {
            case .sent:
                deadLettered[cause]?.increment()
                deadLetterTraces.increment()
                logger.error(
                    "dead-lettered a trace of an event: the dead-letter producer refused the full record",
                    metadata: ["reason": "\(reason)", "source": "\(source)", "refusal": "\(refusal)"])
                return true
            case .shutdown:
                return false
            case .refused(let error):
                throw DeadLetterImpossible(source: source, reason: reason, refusal: error)
            }
        }
    }

    private enum DeadLetterSend {
        case sent, shutdown
        case refused(KafkaError)
    }

    /// Sends one record to the dead-letter topic, retrying what a retry can fix (readiness says
    /// so meanwhile) until it is acknowledged, refused for good, or shutdown comes.
    private func sendToDeadLetters(key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) async -> DeadLetterSend {
        var delay = settings.retryInitial
        defer { status.setDeadLetterFailure(nil) }
        while true {
            do {
                // Its own span under the batch's; the letter keeps its record's trace headers.
                _ = try await deadLetters.tracedSend(
                    topic: deadLetterTopic, key: key, value: value, headers: headers, carryingContext: false,
                    links: KafkaTracing.context(of: headers).map { [$0] } ?? [])
                return .sent
            } catch {
                if error.code == .shutdown { return .shutdown }
                if error.isFatal || !error.isRetriable { return .refused(error) }
                status.setDeadLetterFailure(error.message)
                logger.error("dead-letter topic unavailable; retrying", metadata: ["error": "\(error)"])
                if Task.isShuttingDownGracefully || Task.isCancelled { return .shutdown }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, settings.retryMaximum)
            }
        }
    }
    /// Stores and commits the offsets of `batch` for the partitions still assigned; those
    /// taken away meanwhile are re-read by their new owner (already stored, so a no-op).
    private func commit(_ batch: [KafkaConsumerMessage]) async {
        do {
            let assigned = Set(try consumer.assignment())
            try consumer.markProcessed(batch.filter { assigned.contains($0.topicPartition) })
            try await consumer.commit()
        } catch {
            // Not a loss: uncommitted messages are delivered again and stored once.
            logger.warning("Kafka commit failed; the batch will be re-read", metadata: ["error": "\(error)"])
        }
    }
}

/// The wall-clock spans (milliseconds) of the ingest's last writes, attempts that failed included.
final class RecentWrites: Sendable {
    private let spans = Mutex<[(start: Int64, end: Int64)]>([])
    /// Enough for an event's age at write: 256 writes of a 50 ms batch window cover 12 s.
    private static let kept = 256

    func add(from start: Int64, to end: Int64) {
        spans.withLock { spans in
            spans.append((start, end))
            if spans.count > Self.kept { spans.removeFirst(spans.count - Self.kept) }
        }
    }

    /// How many milliseconds of `from..<to` the ingest spent writing. Newest first: the writes
    /// are one after another, so the first that ended before `start` ends the search.
    func writing(from start: Int64, to end: Int64) -> Int64 {
        spans.withLock { spans in
            var total: Int64 = 0
            for span in spans.reversed() {
                if span.end <= start { break }
                total += max(0, min(end, span.end) - max(start, span.start))
            }
            return total
        }
    }
}
