public import Configuration
import Foundation
public import Logging
import OTel
public import ServiceLifecycle
import Synchronization
public import Tracing

/// Traces through OpenTelemetry (docs/OBSERVABILITY.md), configured by the standard `OTEL_*`
/// variables only. A process traces when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`
/// or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and neither `OTEL_TRACES_EXPORTER=none`,
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_SAMPLER=always_off` turns it off. Otherwise nothing is
/// bootstrapped: no span is made, no header read or written, and the request path pays one
/// relaxed atomic load per traced step.
///
/// Head sampling: whether a new trace is kept is decided once, where it starts (``HeadSampler``),
/// and a trace that is not kept costs nothing more: no span, no context, no header. Spans under a
/// kept trace, and requests that arrive with a `traceparent`, follow their parent's decision.
public enum ShopTracing {
    /// What the variables ask for, checked before anything starts.
    public struct Settings: Sendable, Equatable {
        /// `OTEL_SERVICE_NAME`, else the executable's name.
        public var serviceName: String
        /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or its `_TRACES_` form): `http/protobuf` or `http/json`.
        public var `protocol`: String
        /// `OTEL_TRACES_SAMPLER` and `_ARG`, applied to new traces.
        public var sampler: HeadSampler
    }

    /// The samplers of the OpenTelemetry SDK's environment specification.
    public static let samplers = [
        "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
        "parentbased_traceidratio",
    ]

    /// The settings when the variables ask for traces, `nil` when they do not.
    /// - Throws: a value no exporter here can use (gRPC, which this build leaves out; an unknown
    ///   sampler; a ratio outside 0...1), naming its variable.
    public static func settings(serviceName: String, config: ConfigReader) throws(ConfigurationError) -> Settings? {
        if try config.choice("otel.sdk.disabled", of: ["true", "false"], default: "false") == "true" { return nil }
        let exporter = try config.choice("otel.traces.exporter", of: ["otlp", "none"], default: "otlp")
        let endpoint = config.text("otel.exporter.otlp.traces.endpoint") ?? config.text("otel.exporter.otlp.endpoint")
        guard exporter == "otlp", endpoint != nil else { return nil }
        let protocols = ["http/protobuf", "http/json"]
        var chosen = try config.choice("otel.exporter.otlp.protocol", of: protocols, default: "http/protobuf")
        chosen = try config.choice("otel.exporter.otlp.traces.protocol", of: protocols, default: chosen)
        let sampler = try config.choice("otel.traces.sampler", of: samplers, default: "parentbased_always_on")
        var ratio = 1.0
        if sampler.hasSuffix("traceidratio"), let argument = config.text("otel.traces.sampler.arg") {
            guard let value = Double(argument), (0...1).contains(value) else {
                throw config.invalid("otel.traces.sampler.arg", "must be a ratio from 0 to 1, got \"\(argument)\"")
            }
            ratio = value
        }
        if sampler == "always_off" { return nil }
        // key=value,... (the values percent-encoded); swift-otel reads them, this refuses a typo.
        if let attributes = config.text("otel.resource.attributes") {
            for pair in attributes.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw config.invalid(
                        "otel.resource.attributes", "must be key=value pairs separated by commas, got \"\(pair)\"")
                }
            }
        }
        return Settings(
            serviceName: config.text("otel.service.name") ?? serviceName, protocol: chosen,
            sampler: HeadSampler(
                newTraces: sampler.hasSuffix("always_off") ? 0 : sampler.hasSuffix("traceidratio") ? ratio : 1,
                followsParent: sampler.hasPrefix("parentbased_")))
    }

    /// Whether this process traces (set once by ``bootstrap(_:)``).
    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }
    private static let enabled = Atomic<Bool>(false)
    /// The sampler of new traces (set once by ``bootstrap(_:)``).
    public static var sampler: HeadSampler { samplerBox.withLock { $0 } }
    private static let samplerBox = Mutex(HeadSampler(newTraces: 0, followsParent: true))

    /// What each log line carries besides its own metadata: the active span's `trace_id` and
    /// `span_id`, and `hb.request.id` while a request is answered.
    public static var loggingMetadataProvider: Logger.MetadataProvider? {
        .multiplex([OTel.makeLoggingMetadataProvider(), RequestLogMetadata.provider])
    }

    /// Logs go to standard error as before, each line written while a span is active carrying
    /// `trace_id` and `span_id`, each written while a request is answered `hb.request.id`
    /// (``RequestLogMetadata``); with `settings`, the tracer is bootstrapped (swift-otel, its
    /// OTLP/HTTP exporter, the other variables applied by swift-otel itself, behind
    /// ``HeadSampledTracer``) and its exporting service returned, for the process's service group.
    /// Call once, before anything logs or starts a span.
    public static func bootstrap(_ settings: Settings?) throws -> (any Service)? {
        LoggingSystem.bootstrap(
            StreamLogHandler.standardError(label:metadataProvider:),
            metadataProvider: loggingMetadataProvider)
        guard let settings else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.logs.enabled = false
        // Metrics stay with Prometheus (/metrics).
        configuration.metrics.enabled = false
        configuration.diagnosticLogLevel = .warning
        // The SDK follows parents and keeps every trace the head sampler let start: the variable
        // is applied once, here, not again by the SDK (which reads it from the environment).
        setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on", 1)
        unsetenv("OTEL_TRACES_SAMPLER_ARG")
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        samplerBox.withLock { $0 = settings.sampler }
        InstrumentationSystem.bootstrap(HeadSampledTracer(base: backend.factory, sampler: settings.sampler))
        enabled.store(true, ordering: .relaxed)
        return backend.service
    }

    /// Runs `body` in a span named `name`, a child of the current span (or, with `context`
    /// `.topLevel`, a new trace if the head sampler keeps it), made current for what `body` does;
    /// an error it throws sets the span's status and `error.type`. Without a span (tracing off, no
    /// current span, a new trace not kept), `body` runs with `nil` and nothing else happens.
    public static func withSpan<T, E: Error>(
        _ name: @autoclosure () -> String, ofKind kind: SpanKind,
        context: @autoclosure () -> ServiceContext? = nil,
        errorType: (E) -> String = { "\(type(of: $0))" },
        _ body: ((any Span)?) async throws(E) -> T
    ) async throws(E) -> T {
        guard isEnabled else { return try await body(nil) }
        // A child only under a span (a request the head sampler left out has none): never a new
        // trace by accident. A new trace only where `context` says so, if the sampler keeps it.
        guard let parent = context() ?? ServiceContext.current else { return try await body(nil) }
        let span = startSpan(name(), context: parent, ofKind: kind)
        guard !span.context.isEmpty else { return try await body(nil) }
        defer { span.end() }
        let result: Result<T, E> = await ServiceContext.$current.withValue(span.context) {
            do throws(E) {
                return .success(try await body(span))
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = result {
            span.attributes["error.type"] = errorType(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
        }
        return try result.get()
    }

    /// The W3C `traceparent` of `context` (for a response header a customer can quote), or `nil`.
    public static func traceparent(of context: ServiceContext) -> String? {
        guard isEnabled else { return nil }
        var traceparent: String?
        InstrumentationSystem.instrument.inject(context, into: &traceparent, using: TraceparentInjector())
        return traceparent
    }

    /// Keeps the `traceparent` only: no dictionary per request.
    private struct TraceparentInjector: Injector {
        func inject(_ value: String, forKey key: String, into traceparent: inout String?) {
            if key == "traceparent" { traceparent = value }
        }
    }
}

extension ServiceMain {
    /// Reads the tracing variables as ``configuration(of:config:_:)`` reads the rest (a bad value
    /// stops the process with exit status 78), bootstraps logging and tracing, and returns the
    /// exporting service, if any, for the process's service group.
    public static func observability(of name: String) async -> (any Service)? {
        let settings = await configuration(of: name) { config throws(ConfigurationError) in
            try ShopTracing.settings(serviceName: name, config: config)
        }
        do {
            return try ShopTracing.bootstrap(settings)
        } catch {
            FileHandle.standardError.write(Data("\(name): OpenTelemetry: \(error)\n".utf8))
            exit(78)
        }
    }
}

extension ServiceMain {
    /// Runs `body` (a command rather than a service) while `exporter`, if any, exports its spans,
    /// then stops the exporter gracefully, which exports what is left before this returns.
    public static func withExporter<T>(_ exporter: (any Service)?, _ body: () async throws -> T) async throws -> T {
        guard let exporter else { return try await body() }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [exporter], logger: Logger(label: "otel")))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }
}
