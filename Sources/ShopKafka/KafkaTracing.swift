public import Kafka
import ShopService
public import Tracing

/// Traces across Kafka, after the OpenTelemetry messaging conventions for Kafka
/// (docs/OBSERVABILITY.md): a record carries its creation context in its `traceparent` and
/// `tracestate` headers; a send is a PRODUCER span `send <topic>` that ends on the broker's
/// acknowledgement; a batch is processed under one CONSUMER span linked to each record's creation
/// context.
public enum KafkaTracing {
    /// The trace headers a record carries (W3C Trace Context).
    public static let headerNames: Set<String> = ["traceparent", "tracestate"]

    /// The creation context a record's headers carry, `nil` when they carry none (or tracing is off).
    public static func context(of headers: [KafkaHeader]) -> ServiceContext? {
        guard ShopTracing.isEnabled, headers.contains(where: { headerNames.contains($0.name) }) else { return nil }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: HeaderExtractor())
        return context
    }

    /// The context a new trace following these records starts under: one the head sampler does
    /// not decide again when any record's creation context was sampled (its trace is kept, so the
    /// trace that links to it is too), else a new trace for the head sampler to decide.
    public static func newTrace(following records: some Sequence<[KafkaHeader]>) -> ServiceContext {
        records.contains(where: isSampled) ? HeadSampledTracer<NoOpTracer>.decided : .topLevel
    }

    /// Whether the record's `traceparent` says its trace is sampled (W3C: flags with bit 0 set).
    static func isSampled(_ headers: [KafkaHeader]) -> Bool {
        guard let value = headers.last(where: { $0.name == "traceparent" })?.value, value.count == 55,
            let flags = UInt8(String(decoding: value[53...], as: UTF8.self), radix: 16)
        else { return false }
        return flags & 1 == 1
    }

    /// `headers` with the trace headers of `context` in place of any they had.
    public static func headers(_ headers: [KafkaHeader], carrying context: ServiceContext) -> [KafkaHeader] {
        var injected: [KafkaHeader] = []
        InstrumentationSystem.instrument.inject(context, into: &injected, using: HeaderInjector())
        guard !injected.isEmpty else { return headers }
        return headers.filter { !headerNames.contains($0.name) } + injected
    }

    /// A Kafka error's `error.type`: its code (`brokers_unavailable`, `msg_timed_out`, ...).
    public static func errorType(_ error: KafkaError) -> String { error.code.description }

    /// The attributes every Kafka span has.
    public static func setCommon(_ span: any Span, topic: String, operation: String, type: String) {
        span.updateAttributes { attributes in
            attributes["messaging.system"] = "kafka"
            attributes["messaging.operation.name"] = operation
            attributes["messaging.operation.type"] = type
            attributes["messaging.destination.name"] = topic
        }
    }

    private struct HeaderExtractor: Extractor {
        func extract(key: String, from headers: [KafkaHeader]) -> String? {
            headers.last { $0.name == key }?.value.map { String(decoding: $0, as: UTF8.self) }
        }
    }

    private struct HeaderInjector: Injector {
        func inject(_ value: String, forKey key: String, into headers: inout [KafkaHeader]) {
            headers.append(KafkaHeader(name: key, value: Array(value.utf8)))
        }
    }
}

extension KafkaProducer {
    /// ``send(topic:key:value:headers:partition:)`` in a PRODUCER span `send <topic>`, a child of
    /// the current context, that ends on the acknowledgement with the partition and offset.
    /// - Parameters:
    ///   - carryingContext: whether the record carries the span's context in its trace headers
    ///     (it is the record's creation context); `false` keeps the headers as given (a dead
    ///     letter keeps its record's own).
    ///   - links: contexts the send follows from (the record a dead letter or a redrive copies).
    ///   - newTrace: the context a new trace starts under (``KafkaTracing/newTrace(following:)``),
    ///     when the send is not a span of the current trace (a redrive, run by an operator).
    public func tracedSend(
        topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [], partition: Int32? = nil,
        carryingContext: Bool = true, links: [ServiceContext] = [], newTrace: ServiceContext? = nil
    ) async throws(KafkaError) -> KafkaDeliveryReport {
        // Not traced (no current span, no new trace): straight to the send, before any generic
        // code (unspecialized across modules, it costs runtime metadata lookups per call).
        guard ShopTracing.isEnabled, newTrace != nil || ServiceContext.current != nil else {
            return try await send(topic: topic, key: key, value: value, headers: headers, partition: partition)
        }
        return try await ShopTracing.withSpan(
            "send \(topic)", ofKind: .producer, context: newTrace,
            errorType: KafkaTracing.errorType
        ) { span throws(KafkaError) in
            var sent = headers
            // The record carries the context whether or not the span is sampled (W3C: the flag
            // travels); attributes and links only for a span that records.
            let recording = span?.isRecording == true
            if let span {
                if recording {
                    KafkaTracing.setCommon(span, topic: topic, operation: "send", type: "send")
                    if let key {
                        span.attributes["messaging.kafka.message.key"] = String(decoding: key, as: UTF8.self)
                    }
                    span.attributes["messaging.message.body.size"] = value.count
                    for link in links { span.addLink(SpanLink(context: link, attributes: [:])) }
                }
                if carryingContext { sent = KafkaTracing.headers(headers, carrying: span.context) }
            }
            let report = try await send(topic: topic, key: key, value: value, headers: sent, partition: partition)
            if recording {
                span?.updateAttributes { attributes in
                    attributes["messaging.destination.partition.id"] = String(report.partition)
                    attributes["messaging.kafka.offset"] = Int(report.offset)
                }
            }
            return report
        }
    }
}
