public import Tracing

/// Which new traces are kept: `OTEL_TRACES_SAMPLER` applied where a trace starts (the services'
/// edge, a batch of the ingest, a redrive), once.
public struct HeadSampler: Sendable, Equatable {
    /// The share of new traces kept: 1 (`always_on`, `parentbased_always_on`), the ratio
    /// (`*traceidratio`), 0 (`parentbased_always_off`).
    public var newTraces: Double
    /// Whether a request that arrives with a `traceparent` follows its caller's decision
    /// (`parentbased_*`) instead of this sampler's.
    public var followsParent: Bool

    public init(newTraces: Double, followsParent: Bool) {
        self.newTraces = newTraces
        self.followsParent = followsParent
    }

    /// Whether to keep one more new trace.
    public func keepsNewTrace() -> Bool {
        newTraces >= 1 || (newTraces > 0 && Double.random(in: 0..<1) < newTraces)
    }
}

/// swift-otel's tracer behind the head sampler. A span started without a parent (an empty
/// context) starts a new trace: kept when the sampler says so and handed to swift-otel, whose own
/// sampler follows parents and keeps every such root (it is bootstrapped `parentbased_always_on`);
/// otherwise a no-op span with an empty context, which makes nothing downstream either. A CLIENT
/// or INTERNAL span never starts a trace: an outgoing call of a request the sampler left out is
/// not a trace of its own. Whoever decided already (the request middleware) starts the span under
/// a context that is not empty (``decided``).
public struct HeadSampledTracer<Base: Tracer>: Tracer {
    public typealias Span = HeadSampledSpan<Base.Span>

    let base: Base
    let sampler: HeadSampler

    public init(base: Base, sampler: HeadSampler) {
        self.base = base
        self.sampler = sampler
    }

    /// The context under which a new trace the caller decided to keep is started: not empty, so
    /// the tracer does not decide again, and holding nothing a propagator writes.
    public static var decided: ServiceContext {
        var context = ServiceContext.topLevel
        context[HeadSampledKey.self] = true
        return context
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> Span {
        let parent = context()
        if parent.isEmpty, kind == .client || kind == .internal || !sampler.keepsNewTrace() {
            return .notKept(NoOpTracer.NoOpSpan(context: parent))
        }
        return .kept(
            base.startSpan(
                operationName, context: parent, ofKind: kind, at: instant(), function: function, file: fileID,
                line: line))
    }

    @available(*, deprecated)
    public func forceFlush() { base.forceFlush() }

    public func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        base.extract(carrier, into: &context, using: extractor)
    }

    public func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        base.inject(context, into: &carrier, using: injector)
    }
}

private enum HeadSampledKey: ServiceContextKey {
    typealias Value = Bool
}

/// A span of ``HeadSampledTracer``: swift-otel's, or a no-op one for a trace not kept.
public enum HeadSampledSpan<Base: Tracing.Span>: Tracing.Span {
    case kept(Base)
    case notKept(NoOpTracer.NoOpSpan)

    private var span: any Tracing.Span {
        switch self {
        case .kept(let span): span
        case .notKept(let span): span
        }
    }

    public var context: ServiceContext { span.context }

    public var operationName: String {
        get { span.operationName }
        nonmutating set { span.operationName = newValue }
    }

    public func setStatus(_ status: SpanStatus) { span.setStatus(status) }

    public func addEvent(_ event: SpanEvent) { span.addEvent(event) }

    public func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {
        span.recordError(error, attributes: attributes, at: instant())
    }

    public var attributes: SpanAttributes {
        get { span.attributes }
        nonmutating set { span.attributes = newValue }
    }

    public var isRecording: Bool { span.isRecording }

    public func addLink(_ link: SpanLink) { span.addLink(link) }

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) { span.end(at: instant()) }
}
