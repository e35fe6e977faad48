internal import CRdKafka
public import Logging
internal import NIOPosix
public import ServiceLifecycle
internal import Synchronization

/// A consumer-group member (cooperative-sticky assignment) with at-least-once delivery:
/// offsets are stored only by ``markProcessed(_:)`` and committed after that, in the
/// background, on ``commit()``, when partitions are revoked, and on close.
///
/// A message never marked processed is delivered again after a restart or rebalance. One task
/// should drive ``poll(maxMessages:maxWait:)``; the other methods may be called from anywhere.
/// All blocking librdkafka calls run on the consumer's own threads.
public final class KafkaConsumer: Service, Sendable {
    let client: RDKafkaClient
    private let threads: NIOThreadPool
    private let closed = Mutex(false)
    private let sessionTimeout: Duration

    /// Creates the consumer and subscribes it to `topics`.
    /// - Throws: ``KafkaError/Code/configuration`` if librdkafka rejects a property.
    public init(configuration: KafkaConsumerConfiguration, topics: [String], logger: Logger) throws(KafkaError) {
        guard !topics.isEmpty else { throw .invalidUsage("a consumer needs at least one topic") }
        client = try RDKafkaClient(kind: .consumer, properties: configuration.properties, logger: logger) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rdKafkaRebalance)
        }
        sessionTimeout = configuration.sessionTimeout
        // Serve rebalances, errors and logs from the same queue as messages.
        rd_kafka_poll_set_consumer(client.handle)
        let list = RDKafkaPartitionList(capacity: topics.count)
        for topic in topics { list.add(KafkaTopicPartition(topic: topic, partition: RD_KAFKA_PARTITION_UA)) }
        let err = rd_kafka_subscribe(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "subscribe") }
        // One thread for the poll, one so commits and queries never wait behind it.
        threads = NIOThreadPool(numberOfThreads: 2)
        threads.start()
    }

    deinit {
        threads.shutdownGracefully { _ in }
    }

    /// Waits for up to `maxMessages` messages or until `maxWait` has passed, whichever is first.
    /// With `firstMessageWait`, it waits that long for the first message: an idle caller wakes
    /// rarely. A first message within `maxWait` is gathered with the rest until `maxWait`, as
    /// without it; a later one is returned at once with whatever is already queued, so a
    /// message is never returned later than it would be by polling every `maxWait`. And messages
    /// already queued when the poll begins (they came while the caller was busy with the last
    /// batch) are returned at once: the batch formed meanwhile, and waiting would only delay it.
    /// - Returns: the messages in the order received (per partition, offset order); may be empty.
    /// - Throws: ``KafkaError/Code/fatal`` if the consumer can no longer work,
    ///   ``KafkaError/Code/shutdown`` once closed.
    public func poll(maxMessages: Int, maxWait: Duration, firstMessageWait: Duration? = nil) async throws(KafkaError)
        -> [KafkaConsumerMessage]
    {
        guard maxMessages > 0 else { throw .invalidUsage("maxMessages must be positive") }
        try checkOpen()
        let client = self.client
        return try await runBlocking(on: threads) { () throws(KafkaError) in
            let start = ContinuousClock.now
            var deadline = start.advanced(by: firstMessageWait ?? maxWait)
            var messages: [KafkaConsumerMessage] = []
            // With a first wait, what is queued already is looked at before any waiting.
            var lookingAtQueue = firstMessageWait != nil
            while messages.count < maxMessages {
                let queued = lookingAtQueue
                lookingAtQueue = false
                let remaining = queued ? .zero : ContinuousClock.now.duration(to: deadline)
                guard let raw = rd_kafka_consumer_poll(client.handle, remaining.timeoutMilliseconds) else {
                    if queued { continue }
                    if remaining <= .zero { break }
                    continue
                }
                defer { rd_kafka_message_destroy(raw) }
                let err = raw.pointee.err
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    if err == RD_KAFKA_RESP_ERR__FATAL { throw client.fatalError() ?? KafkaError(err) }
                    client.logger.warning("Kafka consumer error: \(KafkaError(err).message)")
                    // An error on every poll must not hold the caller past maxWait.
                    if !queued, remaining <= .zero { break }
                    continue
                }
                if messages.isEmpty, firstMessageWait != nil {
                    // Queued already: it and the rest of the queue at once. Else the batch
                    // window stays where it was without a first wait; a first message that
                    // comes after it is returned at once, with what is already queued.
                    deadline = queued ? ContinuousClock.now : max(start.advanced(by: maxWait), ContinuousClock.now)
                }
                messages.append(KafkaConsumerMessage(raw))
            }
            return messages
        }
    }

    /// Marks messages as processed: stores, for each partition, the offset after the highest
    /// one given, to be committed. Call it only once the messages' effects are durable.
    /// - Throws: ``KafkaError/Code/notAssigned`` naming partitions this consumer no longer
    ///   owns (their messages will be redelivered to the new owner); the others are stored.
    public func markProcessed(_ messages: some Sequence<KafkaConsumerMessage>) throws(KafkaError) {
        var next: [KafkaTopicPartition: Int64] = [:]
        for message in messages {
            next[message.topicPartition] = max(next[message.topicPartition] ?? 0, message.offset + 1)
        }
        guard !next.isEmpty else { return }
        try checkOpen()
        let list = RDKafkaPartitionList(capacity: next.count)
        for (partition, offset) in next { list.add(partition, offset: offset) }
        let err = rd_kafka_offsets_store(client.handle, list.pointer)
        let failed = list.elements.filter { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }.map(\.partition).sorted()
        if !failed.isEmpty {
            throw KafkaError(
                code: .notAssigned,
                message:
                    "offsets not stored for \(failed.map(\.description).joined(separator: ", ")): not assigned to this consumer",
                isRetriable: false
            )
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "store offsets") }
    }

    /// Commits the stored offsets now and waits for the broker's answer.
    public func commit() async throws(KafkaError) {
        try checkOpen()
        let client = self.client
        try await runBlocking(on: threads) { () throws(KafkaError) in
            let err = rd_kafka_commit(client.handle, nil, 0)
            // Nothing stored since the last commit is not a failure.
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else {
                throw KafkaError(err, context: "commit")
            }
        }
    }

    /// How many times a rebalance took partitions away and the commit of their stored offsets
    /// failed (after retrying for 2 s). Each time, the next owner re-reads the messages processed
    /// since the last successful commit: duplicates, never a loss. Worth a metric.
    public var revokeCommitFailures: Int {
        client.loggerBox.revokeCommitFailures.load(ordering: .relaxed)
    }

    /// The partitions currently assigned to this member, as the group's rebalances left them.
    /// Answers at once: it asks neither a broker nor librdkafka's main thread, and waits for no
    /// poll (a metrics scrape calls it).
    public func assignment() throws(KafkaError) -> [KafkaTopicPartition] {
        try checkOpen()
        return client.loggerBox.assigned.withLock { $0.sorted() }
    }

    /// How far this member is behind, per assigned partition: the partition's high watermark
    /// minus the next offset the application will get. Both come from librdkafka's cache (the
    /// watermark of the last fetch response, as its statistics report), so this asks no broker
    /// and waits for nothing but librdkafka's partition locks. Partitions not fetched from yet
    /// are left out.
    public func lag() throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        let partitions = try assignment()
        guard !partitions.isEmpty else { return [:] }
        let list = RDKafkaPartitionList(capacity: partitions.count)
        for partition in partitions { list.add(partition) }
        let err = rd_kafka_position(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "position") }
        var result: [KafkaTopicPartition: Int64] = [:]
        for element in list.elements where element.offset >= 0 {
            var low: Int64 = -1
            var high: Int64 = -1
            let watermarks = rd_kafka_get_watermark_offsets(
                client.handle, element.partition.topic, element.partition.partition, &low, &high)
            guard watermarks == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { continue }
            result[element.partition] = max(0, high - element.offset)
        }
        return result
    }

    /// The group's committed offsets (the next offset to read) for `partitions`; `nil` where
    /// the group has committed nothing yet.
    public func committedOffsets(
        _ partitions: [KafkaTopicPartition],
        timeout: Duration = .seconds(5)
    ) async throws(KafkaError) -> [KafkaTopicPartition: Int64?] {
        try checkOpen()
        let client = self.client
        return try await runBlocking(on: threads) { () throws(KafkaError) in
            let list = RDKafkaPartitionList(capacity: partitions.count)
            for partition in partitions { list.add(partition) }
            let err = rd_kafka_committed(client.handle, list.pointer, timeout.timeoutMilliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "committed offsets") }
            var result: [KafkaTopicPartition: Int64?] = [:]
            for element in list.elements {
                result[element.partition] = element.offset >= 0 ? element.offset : nil
            }
            return result
        }
    }

    /// Asks the cluster about one topic (whether it exists, its partitions). Runs on the
    /// consumer's query thread, never behind a poll.
    /// - Throws: ``KafkaError``: ``KafkaError/Code/unknownTopic`` when the cluster says the topic
    ///   does not exist, another code when no broker answers within `timeout`.
    public func topicMetadata(_ topic: String, timeout: Duration = .seconds(5)) async throws(KafkaError)
        -> KafkaTopicMetadata
    {
        try checkOpen()
        let client = self.client
        return try await runBlocking(on: threads) { () throws(KafkaError) in
            try client.topicMetadata(topic, timeout: timeout)
        }
    }

    /// Stops fetching from every assigned partition (for back-pressure), and from every partition
    /// assigned later, until ``resume()``: polling goes on serving the group but returns no
    /// messages from them. (librdkafka's own pause covers the partitions assigned when it is
    /// called; one a rebalance adds afterwards would deliver.)
    /// - Returns: the partitions paused now.
    @discardableResult
    public func pause() async throws(KafkaError) -> [KafkaTopicPartition] {
        client.loggerBox.fetchingPaused.store(true, ordering: .releasing)
        return try await changeFetching(pause: true)
    }

    /// Resumes fetching from every assigned partition.
    /// - Returns: the partitions resumed.
    @discardableResult
    public func resume() async throws(KafkaError) -> [KafkaTopicPartition] {
        client.loggerBox.fetchingPaused.store(false, ordering: .releasing)
        return try await changeFetching(pause: false)
    }

    /// Whether ``pause()`` holds fetching back.
    public var isPaused: Bool {
        client.loggerBox.fetchingPaused.load(ordering: .acquiring)
    }

    /// Moves the next fetch of each partition to `offsets` (a message handed back to be
    /// delivered again: its offset), paused partitions included (they fetch from there once
    /// resumed). Partitions not assigned to this consumer are left out.
    public func seek(_ offsets: [KafkaTopicPartition: Int64], timeout: Duration = .seconds(5)) async throws(KafkaError)
    {
        guard !offsets.isEmpty else { return }
        try checkOpen()
        let client = self.client
        try await runBlocking(on: threads) { () throws(KafkaError) in
            var pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
            guard rd_kafka_assignment(client.handle, &pointer) == RD_KAFKA_RESP_ERR_NO_ERROR, let pointer else {
                throw KafkaError(rd_kafka_last_error(), context: "assignment")
            }
            let assigned = Set(RDKafkaPartitionList(taking: pointer).elements.map(\.partition))
            let list = RDKafkaPartitionList(capacity: offsets.count)
            for (partition, offset) in offsets where assigned.contains(partition) {
                list.add(partition, offset: offset)
            }
            guard list.pointer.pointee.cnt > 0 else { return }
            if let error = rd_kafka_seek_partitions(client.handle, list.pointer, timeout.timeoutMilliseconds) {
                defer { rd_kafka_error_destroy(error) }
                throw KafkaError(rd_kafka_error_code(error), context: "seek")
            }
            if let failed = list.elements.first(where: { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) {
                throw KafkaError(failed.error, context: "seek \(failed.partition)")
            }
        }
    }

    private func changeFetching(pause: Bool) async throws(KafkaError) -> [KafkaTopicPartition] {
        let partitions = try assignment()
        guard !partitions.isEmpty else { return [] }
        let list = RDKafkaPartitionList(capacity: partitions.count)
        for partition in partitions { list.add(partition) }
        let err =
            pause
            ? rd_kafka_pause_partitions(client.handle, list.pointer)
            : rd_kafka_resume_partitions(client.handle, list.pointer)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: pause ? "pause" : "resume") }
        return partitions
    }

    /// The error that made this consumer unusable for good (librdkafka's fatal error), or `nil`.
    public var fatalFailure: KafkaError? { client.fatalError() }

    /// Waits for graceful shutdown (or cancellation), then closes.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Leaves the group: revokes the assignment, commits the stored offsets and stops. Later
    /// calls throw ``KafkaError/Code/shutdown``. Calling it twice is harmless.
    public func close() async {
        let alreadyClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        guard !alreadyClosed else { return }
        let client = self.client
        let joinBound = sessionTimeout
        do {
            // Even from a cancelled task (a service group out of time cancels its services):
            // a consumer that never closes keeps its partitions, heartbeating, until
            // max.poll.interval.ms throws it out of the group.
            try await runBlockingToCompletion(on: threads) { () throws(KafkaError) in
                let stateless = Self.awaitFirstAssignmentIfJoining(client, bound: joinBound)
                let err = rd_kafka_consumer_close(client.handle)
                if stateless {
                    // Left the group (the close above), but destroying the handle now would
                    // abort the process: leave it to the process's exit. It never had an
                    // assignment, so nothing was fetched or committed through it.
                    client.abandoned.store(true, ordering: .relaxed)
                    client.logger.warning(
                        "Kafka consumer closed before the group's first assignment; its handle is left to the process exit (librdkafka#4312)"
                    )
                }
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "close") }
            }
        } catch {
            client.logger.error("Kafka consumer close failed: \(error.message)")
        }
    }

    /// librdkafka before 2.3.0 aborts the process (`rd_kafka_sticky_assignor_state_destroy:
    /// Assertion 'assignor_state' failed`, confluentinc/librdkafka#4312) when a cooperative-sticky
    /// member is destroyed after a JoinGroup answer named the assignor but before a SyncGroup
    /// gave it its first assignment (the assignor's state is set by that first assignment);
    /// Debian 12 ships 2.0.2. While no assignment has come, no message can arrive, so serving
    /// the group until it lands, within `bound`, loses nothing. Returns whether the member is
    /// still in that window at the end (the mock cluster was seen to keep a member there for
    /// longer than the bound when another joined right after it): then its handle must not be
    /// destroyed. Blocking: call on the consumer's threads.
    private static func awaitFirstAssignmentIfJoining(_ client: RDKafkaClient, bound: Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: bound)
        func joined() -> Bool {
            (rd_kafka_rebalance_protocol(client.handle).map { String(cString: $0) } ?? "NONE") != "NONE"
        }
        func assigned() -> Bool { client.loggerBox.assignments.load(ordering: .relaxed) > 0 }
        while ContinuousClock.now < deadline, joined(), !assigned() {
            // Anything fetched in the same poll is not marked processed and so is redelivered.
            if let message = rd_kafka_consumer_poll(client.handle, 100) { rd_kafka_message_destroy(message) }
        }
        return joined() && !assigned()
    }

    private func checkOpen() throws(KafkaError) {
        if closed.withLock({ $0 }) { throw .shutdown }
    }
}

extension KafkaConsumerMessage {
    /// Copies a librdkafka message; the caller still destroys it. It takes the pointer librdkafka
    /// returned, not a copy: the timestamp and header accessors read the private struct around it.
    init(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        topic = String(cString: rd_kafka_topic_name(message.rkt))
        partition = message.partition
        offset = message.offset
        key = message.key.map { Array(UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        value = message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: message.len)) } ?? []
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(pointer, &timestampType)
        timestampMilliseconds = timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp
        headers = []
        var cHeaders: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &cHeaders) == RD_KAFKA_RESP_ERR_NO_ERROR
        else { return }
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(cHeaders, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append(
                KafkaHeader(
                    name: name.map { String(cString: $0) } ?? "",
                    value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                )
            )
            index += 1
        }
    }
}
