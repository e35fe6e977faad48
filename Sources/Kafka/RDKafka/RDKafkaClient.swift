internal import CRdKafka
internal import Foundation
internal import Logging
internal import Synchronization

/// The one owner of an `rd_kafka_t`. librdkafka documents its handle as thread-safe, so the
/// wrapper is `@unchecked Sendable`; it is destroyed when the last owner lets go.
final class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    /// Kept alive for as long as librdkafka may call `rdKafkaLog` with it as the opaque.
    let loggerBox: LoggerBox

    enum Kind {
        case producer, consumer
    }

    /// Creates a client from librdkafka properties.
    /// - Parameter events: the `RD_KAFKA_EVENT_*` types to deliver on the main queue instead of
    ///   through callbacks (see `rd_kafka_conf_set_events`).
    /// - Parameter configure: last changes to the `rd_kafka_conf_t` (callbacks) before creation.
    init(
        kind: Kind,
        properties: [String: String],
        events: Int32 = 0,
        logger: Logger,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws(KafkaError) {
        let conf = rd_kafka_conf_new()
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            guard rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                throw .configuration("\(key): \(errorText.nulTerminatedString)")
            }
        }
        if events != 0 { rd_kafka_conf_set_events(conf, events) }
        let box = LoggerBox(logger)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(box).toOpaque())
        rd_kafka_conf_set_log_cb(conf, rdKafkaLog)
        configure(conf!)
        let type = kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw .configuration(errorText.nulTerminatedString)
        }
        self.handle = handle
        self.loggerBox = box
    }

    /// Set when destroying the handle would abort the process (see `KafkaConsumer.close()`): the
    /// handle is then left to the process's exit.
    let abandoned = Atomic<Bool>(false)

    deinit {
        if abandoned.load(ordering: .relaxed) { return }
        // librdkafka 2.0.2's destroy closes a consumer first, and after a fatal error that close
        // never finishes (it spins: seen with rd_kafka_test_fatal_error), so the process could not
        // exit. A client broken for good is destroyed without it; there is nothing left to commit.
        if fatalError() != nil {
            rd_kafka_destroy_flags(handle, Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE))
        } else {
            rd_kafka_destroy(handle)
        }
    }

    var logger: Logger { loggerBox.logger }

    /// The fatal error that made this client unusable, if one did.
    func fatalError() -> KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &text, text.count)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(
            code: .fatal, message: "\(text.nulTerminatedString) [\(String(cString: rd_kafka_err2name(err)))]",
            isRetriable: false)
    }

    /// Blocking: asks any broker for the cluster's brokers; succeeds only if one answers within
    /// `timeout`. Call off the cooperative pool.
    func brokerCount(timeout: Duration) throws(KafkaError) -> Int {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, nil, &metadata, Int32(timeout.timeoutMilliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(err, context: "cluster metadata")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        return Int(metadata.pointee.broker_cnt)
    }

    /// Blocking: asks the cluster about one topic. Call off the cooperative pool.
    func topicMetadata(_ topic: String, timeout: Duration) throws(KafkaError) -> KafkaTopicMetadata {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "topic \(topic)")
        }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &metadata, Int32(timeout.timeoutMilliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(err, context: "metadata for \(topic)")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt == 1, let entry = metadata.pointee.topics?.pointee else {
            throw KafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, context: "metadata for \(topic)")
        }
        guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(entry.err, context: "topic \(topic)")
        }
        return KafkaTopicMetadata(name: topic, partitionCount: Int(entry.partition_cnt))
    }
}

/// What librdkafka's callbacks reach through the client's opaque pointer.
final class LoggerBox: Sendable {
    let logger: Logger
    /// Revocations whose commit of the stored offsets failed (see `rdKafkaRebalance`).
    let revokeCommitFailures = Atomic<Int>(0)
    /// Whether the application paused fetching: partitions assigned meanwhile are paused as they
    /// arrive (see `KafkaConsumer.pause()`).
    let fetchingPaused = Atomic<Bool>(false)
    /// Assignments the group gave this member (the rebalance callback's assign events, an empty
    /// one included): the first one is when librdkafka has its assignor's state.
    let assignments = Atomic<Int>(0)
    /// The partitions assigned now, as the rebalance callback changed them: read without asking
    /// librdkafka, whose `rd_kafka_assignment` waits for its main thread (a metrics scrape must
    /// not queue behind a poll or a reconnecting client).
    let assigned = Mutex<Set<KafkaTopicPartition>>([])

    init(_ logger: Logger) {
        self.logger = logger
    }
}

/// librdkafka's log callback: may run on any librdkafka thread; it only hands the line to
/// swift-log, which is thread-safe.
private func rdKafkaLog(
    _ rk: OpaquePointer?,
    _ level: Int32,
    _ facility: UnsafePointer<CChar>?,
    _ message: UnsafePointer<CChar>?
) {
    guard let rk, let opaque = rd_kafka_opaque(rk), let message else { return }
    let logger = Unmanaged<LoggerBox>.fromOpaque(opaque).takeUnretainedValue().logger
    let swiftLevel: Logger.Level =
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    logger.log(
        level: swiftLevel,
        "\(String(cString: message))",
        metadata: ["kafka.facility": "\(facility.map { String(cString: $0) } ?? "")"]
    )
}

/// The consumer's rebalance callback. librdkafka calls it from `rd_kafka_consumer_poll`, so it
/// runs on the consumer's own poll thread, where blocking is allowed.
///
/// Before partitions are taken away it commits the stored offsets synchronously, so the next
/// owner starts exactly after what this member processed. (librdkafka's own commit on revoke is
/// asynchronous, and the mock coordinator was seen handing the partitions over before it landed.)
/// A lost assignment is not committed: those partitions already belong to another member.
func rdKafkaRebalance(
    _ rk: OpaquePointer?,
    _ err: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
    _ opaque: UnsafeMutableRawPointer?
) {
    guard let rk else { return }
    let box = opaque.map { Unmanaged<LoggerBox>.fromOpaque($0).takeUnretainedValue() }
    let logger = box?.logger
    let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
    if err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
        if rd_kafka_assignment_lost(rk) == 0 {
            // A coordinator refuses commits while the group is completing a rebalance; retry
            // briefly. If it still fails, the next owner re-reads what was processed since the
            // last commit: a duplicate, never a loss.
            let deadline = ContinuousClock.now.advanced(by: .seconds(2))
            var commit = rd_kafka_commit(rk, nil, 0)
            while commit == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, ContinuousClock.now < deadline {
                usleep(100_000)
                commit = rd_kafka_commit(rk, nil, 0)
            }
            if commit != RD_KAFKA_RESP_ERR_NO_ERROR && commit != RD_KAFKA_RESP_ERR__NO_OFFSET {
                box?.revokeCommitFailures.add(1, ordering: .relaxed)
                logger?.warning("Kafka commit on revoke failed: \(KafkaError(commit).message)")
            }
        }
        if cooperative {
            if let error = rd_kafka_incremental_unassign(rk, partitions) {
                logger?.error("Kafka unassign failed: \(String(cString: rd_kafka_error_string(error)))")
                rd_kafka_error_destroy(error)
            } else {
                let taken = partitionsOf(partitions)
                box?.assigned.withLock { $0.subtract(taken) }
            }
        } else if rd_kafka_assign(rk, nil) == RD_KAFKA_RESP_ERR_NO_ERROR {
            box?.assigned.withLock { $0 = [] }
        }
    } else if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        box?.assignments.add(1, ordering: .relaxed)
        let given = partitionsOf(partitions)
        if cooperative {
            if let error = rd_kafka_incremental_assign(rk, partitions) {
                logger?.error("Kafka assign failed: \(String(cString: rd_kafka_error_string(error)))")
                rd_kafka_error_destroy(error)
            } else {
                box?.assigned.withLock { $0.formUnion(given) }
            }
        } else if rd_kafka_assign(rk, partitions) == RD_KAFKA_RESP_ERR_NO_ERROR {
            box?.assigned.withLock { $0 = given }
        }
        // Every partition given takes the application's current state: paused while it holds
        // back (a partition assigned then must not deliver behind its back), else resumed.
        // librdkafka keeps a partition's pause across an unassign, so one paused before a
        // rebalance and given back after `resume()` (which saw the assignment without it) would
        // otherwise stay paused for good: found by the mongodb-long-outage scenario.
        if let partitions {
            if box?.fetchingPaused.load(ordering: .acquiring) == true {
                _ = rd_kafka_pause_partitions(rk, partitions)
            } else {
                _ = rd_kafka_resume_partitions(rk, partitions)
            }
        }
    } else {
        logger?.error("Kafka rebalance error: \(KafkaError(err).message)")
        if rd_kafka_assign(rk, nil) == RD_KAFKA_RESP_ERR_NO_ERROR {
            box?.assigned.withLock { $0 = [] }
        }
    }
}

/// The partitions of a list librdkafka owns (a rebalance callback's), which stays its.
private func partitionsOf(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Set<KafkaTopicPartition> {
    guard let list else { return [] }
    return Set(
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)
        })
}

/// An owned `rd_kafka_topic_partition_list_t`.
final class RDKafkaPartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(capacity: Int) {
        pointer = rd_kafka_topic_partition_list_new(Int32(clamping: capacity))
    }

    /// Takes ownership of a list librdkafka returned.
    init(taking pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.pointer = pointer
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(pointer)
    }

    func add(_ partition: KafkaTopicPartition, offset: Int64? = nil) {
        let element = rd_kafka_topic_partition_list_add(pointer, partition.topic, partition.partition)
        if let offset { element?.pointee.offset = offset }
    }

    /// Every element with its offset and per-partition error.
    var elements: [(partition: KafkaTopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
        (0..<Int(pointer.pointee.cnt)).map { index in
            let element = pointer.pointee.elems[index]
            return (
                KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition),
                element.offset, element.err
            )
        }
    }
}

extension [CChar] {
    /// The text of a C error buffer that librdkafka filled and NUL-terminated.
    var nulTerminatedString: String {
        String(decoding: prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
