internal import CRdKafka
internal import Foundation
public import Logging
internal import NIOPosix
public import ServiceLifecycle
internal import Synchronization

/// An idempotent Kafka producer (`enable.idempotence=true`, `acks=all`). Make one per process.
///
/// ``send(topic:key:value:headers:)`` returns once the broker has acknowledged the message,
/// or throws a ``KafkaError`` within the configured delivery timeout. A dedicated thread serves
/// librdkafka's delivery reports; nothing blocks the caller's thread. As a ServiceLifecycle
/// `Service` it flushes what is queued on graceful shutdown, within a bound.
///
/// While librdkafka reports every broker down, a `send` does not queue its message for the
/// whole delivery timeout: it waits at most `reachabilityProbeTimeout` for a metadata request
/// to show a broker is back, and otherwise fails at once, with nothing sent.
public final class KafkaProducer: Service, Sendable {
    let client: RDKafkaClient
    private let state: ProducerState
    private let availability: BrokerAvailability
    private let configuration: KafkaProducerConfiguration

    /// Creates the producer and starts its delivery-report thread.
    /// - Throws: ``KafkaError/Code/configuration`` if librdkafka rejects a property.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        var properties = configuration.properties
        // murmur2 is what the Java client uses, so keys land on the same partitions as theirs.
        properties["partitioner"] = properties["partitioner"] ?? "murmur2_random"
        self.client = try RDKafkaClient(
            kind: .producer,
            properties: properties,
            events: Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR),
            logger: logger
        )
        self.configuration = configuration
        self.state = ProducerState()
        self.availability = BrokerAvailability()
        let client = self.client
        let state = self.state
        let availability = self.availability
        let idleWait = configuration.idleEventWait
        let thread = Thread {
            Self.serveEvents(client: client, state: state, availability: availability, idleWait: idleWait)
        }
        thread.name = "kafka-producer-events"
        thread.start()
    }

    deinit {
        // Without a shutdown the event thread would keep the client alive forever.
        state.beginDraining(deadline: .now)
        Self.wakeEventThread(client)
    }

    /// Returns the event thread's wait on the main queue at once (it then sees the drain).
    private static func wakeEventThread(_ client: RDKafkaClient) {
        let queue = rd_kafka_queue_get_main(client.handle)
        rd_kafka_queue_yield(queue)
        rd_kafka_queue_destroy(queue)
    }

    /// Produces one message and waits for the broker's acknowledgement.
    /// - Parameters:
    ///   - topic: the topic.
    ///   - key: the partitioning key; messages with the same key keep their order.
    ///   - value: the payload.
    ///   - headers: record headers.
    ///   - partition: the partition to write to; `nil` lets the partitioner choose by the key.
    /// - Returns: the partition and offset the broker stored the message at.
    /// - Throws: ``KafkaError``: ``KafkaError/Code/timedOut`` when not acknowledged within
    ///   `deliveryTimeout`, ``KafkaError/Code/queueFull`` at once when the local queue is full,
    ///   ``KafkaError/Code/brokersUnavailable`` within `reachabilityProbeTimeout` while every broker
    ///   is down (nothing was sent), ``KafkaError/Code/shutdown`` once the producer is shutting down.
    public func send(
        topic: String,
        key: [UInt8]?,
        value: [UInt8],
        headers: [KafkaHeader] = [],
        partition: Int32? = nil
    ) async throws(KafkaError) -> KafkaDeliveryReport {
        if availability.allBrokersDown {
            try await confirmReachable()
        }
        let result = await withCheckedContinuation { (continuation: DeliveryContinuation) in
            guard let id = state.register(continuation) else {
                continuation.resume(returning: .failure(.shutdown))
                return
            }
            let err = produce(
                topic: topic, partition: partition ?? RD_KAFKA_PARTITION_UA, key: key, value: value, headers: headers,
                id: id)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                state.complete(
                    id: id, with: .failure(client.fatalError() ?? KafkaError(err, context: "produce to \(topic)")))
            }
        }
        return try result.get()
    }

    private func produce(
        topic: String, partition: Int32, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], id: UInt
    ) -> rd_kafka_resp_err_t {
        var cHeaders: OpaquePointer? = nil
        if !headers.isEmpty {
            cHeaders = rd_kafka_headers_new(headers.count)
            for header in headers {
                if let headerValue = header.value {
                    headerValue.withUnsafeBytes {
                        _ = rd_kafka_header_add(cHeaders, header.name, -1, $0.baseAddress, $0.count)
                    }
                } else {
                    _ = rd_kafka_header_add(cHeaders, header.name, -1, nil, 0)
                }
            }
        }
        let err = value.withUnsafeBytes { valueBytes in
            func call(_ keyPointer: UnsafeRawPointer?, _ keyLength: Int) -> rd_kafka_resp_err_t {
                shop_rd_kafka_produce(
                    client.handle, topic, partition, keyPointer, keyLength,
                    valueBytes.baseAddress, valueBytes.count, cHeaders, UnsafeMutableRawPointer(bitPattern: id)
                )
            }
            guard let key else { return call(nil, 0) }
            return key.withUnsafeBytes { call($0.baseAddress, $0.count) }
        }
        // On success librdkafka owns the headers; on failure they are still ours.
        if err != RD_KAFKA_RESP_ERR_NO_ERROR, let cHeaders { rd_kafka_headers_destroy(cHeaders) }
        return err
    }

    /// Whether librdkafka last reported every broker down and no request has reached one since.
    public var allBrokersDown: Bool { availability.allBrokersDown }

    /// Refuses the send while every broker is down (see ``BrokerAvailability``).
    private func confirmReachable() async throws(KafkaError) {
        let client = self.client
        let timeout = configuration.reachabilityProbeTimeout
        let reachable = await availability.probe {
            (try? await runBlocking { () throws(KafkaError) in try client.brokerCount(timeout: timeout) }) != nil
        }
        guard reachable else {
            throw KafkaError(
                code: .brokersUnavailable, message: "every Kafka broker is down; the message was not sent",
                isRetriable: true)
        }
    }

    /// Why a send cannot succeed now, from what this producer already knows, or `nil`: its fatal
    /// error, or every broker down as librdkafka reported it and a reachability probe confirmed.
    /// Never waits: the readiness check of a producing service, which must answer within its
    /// probe's timeout whatever the brokers do. While every broker is reported down it starts a
    /// probe in the background when one is due (the same single probe sends use), so the answer
    /// turns back once a broker answers.
    public func unavailability() -> KafkaError? {
        if let fatal = fatalFailure { return fatal }
        let client = self.client
        let timeout = configuration.reachabilityProbeTimeout
        let down = availability.confirmedDown {
            (try? await runBlocking { () throws(KafkaError) in try client.brokerCount(timeout: timeout) }) != nil
        }
        guard down else { return nil }
        return KafkaError(
            code: .brokersUnavailable,
            message: "every Kafka broker is down (librdkafka reported it and a metadata request found none)",
            isRetriable: true)
    }

    /// Asks the cluster for a topic's partitions.
    /// - Throws: ``KafkaError`` when no broker answers within `timeout` or the topic is unknown.
    public func topicMetadata(_ topic: String, timeout: Duration = .seconds(5)) async throws(KafkaError)
        -> KafkaTopicMetadata
    {
        let client = self.client
        return try await runBlocking { () throws(KafkaError) in try client.topicMetadata(topic, timeout: timeout) }
    }

    /// The error that made this producer unusable for good (librdkafka's fatal error: fenced,
    /// or an idempotence guarantee it can no longer keep), or `nil`. Every send fails once it is
    /// set; only a new process recovers, so a service's liveness reports it.
    public var fatalFailure: KafkaError? { client.fatalError() }

    /// Number of messages not yet acknowledged (queued, in flight, or with an unserved report).
    public var outstandingMessages: Int {
        Int(rd_kafka_outq_len(client.handle))
    }

    /// Waits for graceful shutdown (or cancellation), then shuts down.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting messages, waits up to `shutdownFlushTimeout` for queued ones to be
    /// acknowledged, then fails whatever is left with ``KafkaError/Code/shutdown``. Every
    /// pending ``send(topic:key:value:headers:)`` has returned when this returns.
    public func shutdown() async {
        let deadline = ContinuousClock.now.advanced(by: configuration.shutdownFlushTimeout)
        await withCheckedContinuation { continuation in
            state.beginDraining(deadline: deadline, waiter: continuation)
            Self.wakeEventThread(client)
        }
    }

    /// The body of the event thread: serves delivery reports and errors until shutdown.
    private static func serveEvents(
        client: RDKafkaClient, state: ProducerState, availability: BrokerAvailability, idleWait: Duration
    ) {
        let queue = rd_kafka_queue_get_main(client.handle)
        defer { rd_kafka_queue_destroy(queue) }
        func serve(timeout: Duration) {
            guard let event = rd_kafka_queue_poll(queue, timeout.timeoutMilliseconds) else { return }
            defer { rd_kafka_event_destroy(event) }
            handle(event, client: client, state: state, availability: availability)
        }
        // Every event wakes the wait, and a shutdown too (wakeEventThread); an idle producer
        // wakes every `idleWait` (a second by default, not ten times: issue 31's idle cost), and
        // 100 ms apart while it drains, to see its deadline.
        while !state.mayStopServing(outstanding: Int(rd_kafka_outq_len(client.handle))) {
            serve(timeout: state.isDraining ? .milliseconds(100) : idleWait)
        }
        if rd_kafka_outq_len(client.handle) > 0 {
            client.logger.warning(
                "Kafka producer shutdown timed out; failing undelivered messages",
                metadata: ["kafka.outstanding": "\(rd_kafka_outq_len(client.handle))"]
            )
            // Purging turns every queued and in-flight message into a failed delivery report.
            _ = rd_kafka_purge(client.handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
            let purgeDeadline = ContinuousClock.now.advanced(by: .seconds(2))
            while rd_kafka_outq_len(client.handle) > 0, ContinuousClock.now < purgeDeadline {
                serve(timeout: .milliseconds(50))
            }
        }
        state.close()
    }

    private static func handle(
        _ event: OpaquePointer, client: RDKafkaClient, state: ProducerState, availability: BrokerAvailability
    ) {
        switch Int32(rd_kafka_event_type(event)) {
        case RD_KAFKA_EVENT_DR:
            while let message = rd_kafka_event_message_next(event) {
                let id = UInt(bitPattern: message.pointee._private)
                let result: Result<KafkaDeliveryReport, KafkaError>
                if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    availability.reached()
                    result = .success(
                        KafkaDeliveryReport(
                            topic: String(cString: rd_kafka_topic_name(message.pointee.rkt)),
                            partition: message.pointee.partition,
                            offset: message.pointee.offset
                        )
                    )
                } else {
                    var error = KafkaError(message.pointee.err, context: "delivery")
                    error.possiblyPersisted = rd_kafka_message_status(message) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED
                    result = .failure(error)
                }
                state.complete(id: id, with: result)
            }
        case RD_KAFKA_EVENT_ERROR:
            let err = rd_kafka_event_error(event)
            let text = String(cString: rd_kafka_event_error_string(event))
            if err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { availability.allDown() }
            if rd_kafka_event_error_is_fatal(event) != 0 {
                client.logger.critical("Kafka producer fatal error: \(client.fatalError()?.message ?? text)")
            } else {
                client.logger.warning("Kafka producer error: \(text) [\(String(cString: rd_kafka_err2name(err)))]")
            }
        default:
            break
        }
    }
}

/// Whether every broker is down, as librdkafka last said, and the probes that check it again.
///
/// The first send after librdkafka's `ALL_BROKERS_DOWN` waits for a probe (idle connections
/// that a broker closed also raise it, and then the probe simply reconnects). Once a probe has
/// failed, sends are refused at once while the next probe runs in the background, at most one
/// every `failureMemory`.
final class BrokerAvailability: Sendable {
    private struct State {
        var allBrokersDown = false
        var probe: Task<Bool, Never>?
        var failedAt: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    /// The least time between two probes that fail.
    static let failureMemory: Duration = .milliseconds(250)

    var allBrokersDown: Bool { state.withLock { $0.allBrokersDown } }

    /// librdkafka's `ALL_BROKERS_DOWN`.
    func allDown() { state.withLock { $0.allBrokersDown = true } }

    /// A broker answered (a delivery report or a probe).
    func reached() {
        state.withLock { state in
            state.allBrokersDown = false
            state.failedAt = nil
        }
    }

    /// Whether a broker can be reached: `true` at once unless every broker was reported down;
    /// then the answer of the running or a new probe (`check`), or `false` at once once one
    /// has failed.
    func probe(_ check: @escaping @Sendable () async -> Bool) async -> Bool {
        enum Next {
            case answer(Bool)
            case wait(Task<Bool, Never>)
        }
        let next: Next = state.withLock { state in
            guard state.allBrokersDown else { return .answer(true) }
            startProbeIfDue(&state, check)
            if state.failedAt != nil { return .answer(false) }
            return .wait(state.probe!)
        }
        switch next {
        case .answer(let reachable): return reachable
        case .wait(let probe): return await probe.value
        }
    }

    /// Whether every broker is down as far as is known now: librdkafka said so and the latest probe
    /// failed. Never waits; starts a probe (`check`) when one is due.
    func confirmedDown(_ check: @escaping @Sendable () async -> Bool) -> Bool {
        state.withLock { state in
            guard state.allBrokersDown else { return false }
            startProbeIfDue(&state, check)
            return state.failedAt != nil
        }
    }

    private func startProbeIfDue(_ state: inout State, _ check: @escaping @Sendable () async -> Bool) {
        guard state.probe == nil, state.failedAt.map({ ContinuousClock.now - $0 >= Self.failureMemory }) ?? true
        else { return }
        state.probe = Task {
            let reachable = await check()
            self.finish(reachable: reachable)
            return reachable
        }
    }

    private func finish(reachable: Bool) {
        state.withLock { state in
            state.probe = nil
            if reachable {
                state.allBrokersDown = false
                state.failedAt = nil
            } else {
                state.failedAt = .now
            }
        }
    }
}

typealias DeliveryContinuation = CheckedContinuation<Result<KafkaDeliveryReport, KafkaError>, Never>

/// What the producer's caller-facing side and its event thread share.
final class ProducerState: Sendable {
    private struct State {
        var nextID: UInt = 1
        var pending: [UInt: DeliveryContinuation] = [:]
        var drainingDeadline: ContinuousClock.Instant?
        var closed = false
        var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Registers a send; `nil` once shutdown has begun. The id travels as the message opaque.
    func register(_ continuation: DeliveryContinuation) -> UInt? {
        state.withLock { state in
            guard state.drainingDeadline == nil else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.pending[id] = continuation
            return id
        }
    }

    func complete(id: UInt, with result: Result<KafkaDeliveryReport, KafkaError>) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.resume(returning: result)
    }

    /// Whether the event thread may stop: shutdown has begun, and either its deadline has
    /// passed or nothing is left to deliver: librdkafka holds nothing (`outstanding`) and no send
    /// is registered. A send registers before it hands its message to librdkafka, so an empty
    /// queue alone could stop the thread between the two, leaving that send to be produced with
    /// nobody to serve its delivery report.
    func mayStopServing(outstanding: Int, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            guard let deadline = state.drainingDeadline else { return false }
            return now >= deadline || (outstanding == 0 && state.pending.isEmpty)
        }
    }

    var isDraining: Bool {
        state.withLock { $0.drainingDeadline != nil }
    }

    /// Stops new sends. The earliest deadline asked for wins; a waiter resumes once closed.
    func beginDraining(deadline: ContinuousClock.Instant, waiter: CheckedContinuation<Void, Never>? = nil) {
        let resumeNow = state.withLock { state in
            state.drainingDeadline = min(state.drainingDeadline ?? deadline, deadline)
            guard let waiter else { return false }
            if state.closed { return true }
            state.shutdownWaiters.append(waiter)
            return false
        }
        if resumeNow { waiter?.resume() }
    }

    /// Called by the event thread as it exits: anything still pending fails.
    func close() {
        let (pending, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.pending = [:]
                state.shutdownWaiters = []
            }
            return (state.pending.values, state.shutdownWaiters)
        }
        for continuation in pending { continuation.resume(returning: .failure(.shutdown)) }
        for waiter in waiters { waiter.resume() }
    }
}

/// Runs a blocking librdkafka call on NIO's pool for blocking work, never on the cooperative
/// pool or an event loop.
func runBlocking<T: Sendable>(
    on pool: NIOThreadPool = .singleton,
    _ body: @escaping @Sendable () throws(KafkaError) -> T
) async throws(KafkaError) -> T {
    do {
        return try await pool.runIfActive { () throws -> T in try body() }
    } catch let error as KafkaError {
        throw error
    } catch {
        throw KafkaError.shutdown
    }
}

/// Like ``runBlocking(on:_:)``, but the work runs even when the calling task is cancelled
/// (`runIfActive` never starts cancelled work): for what must happen whatever the caller's state,
/// such as closing a client. It fails only once the pool itself has stopped.
func runBlockingToCompletion<T: Sendable>(
    on pool: NIOThreadPool,
    _ body: @escaping @Sendable () throws(KafkaError) -> T
) async throws(KafkaError) -> T {
    let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
        pool.submit { state in
            switch state {
            case .active: continuation.resume(returning: Result { () throws(KafkaError) in try body() })
            case .cancelled: continuation.resume(returning: .failure(.shutdown))
            }
        }
    }
    return try result.get()
}
