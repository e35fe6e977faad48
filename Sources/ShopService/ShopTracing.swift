public import Configuration
import Foundation
import Logging
import OTel
public import ServiceLifecycle
import Synchronization
public import Tracing

/// Traces through OpenTelemetry (docs/OBSERVABILITY.md), configured by the standard `OTEL_*`
/// variables only. A process traces when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`
/// or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and neither `OTEL_TRACES_EXPORTER=none` nor
/// `OTEL_SDK_DISABLED=true` turns it off. Otherwise nothing is bootstrapped: no span is made, no
/// header read or written, and the request path pays one relaxed atomic load per traced step.
public enum ShopTracing {
    /// What the variables ask for, checked before anything starts.
    public struct Settings: Sendable, Equatable {
        /// `OTEL_SERVICE_NAME`, else the executable's name.
        public var serviceName: String
        /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or its `_TRACES_` form): `http/protobuf` or `http/json`.
        public var `protocol`: String
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
        if sampler.hasSuffix("traceidratio"), let argument = config.text("otel.traces.sampler.arg") {
            guard let ratio = Double(argument), (0...1).contains(ratio) else {
                throw config.invalid("otel.traces.sampler.arg", "must be a ratio from 0 to 1, got \"\(argument)\"")
            }
        }
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
        return Settings(serviceName: config.text("otel.service.name") ?? serviceName, protocol: chosen)
    }

    /// Whether this process traces (set once by ``bootstrap(_:logLevel:)``).
    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }
    private static let enabled = Atomic<Bool>(false)

    /// Logs go to standard error as before, each line written while a span is active carrying
    /// `trace_id` and `span_id`; with `settings`, the tracer is bootstrapped (swift-otel, its
    /// OTLP/HTTP exporter, the variables applied by swift-otel itself) and its exporting
    /// service returned, for the process's service group. Call once, before anything logs.
    public static func bootstrap(_ settings: Settings?) throws -> (any Service)? {
        LoggingSystem.bootstrap(
            StreamLogHandler.standardError(label:metadataProvider:),
            metadataProvider: OTel.makeLoggingMetadataProvider())
        guard let settings else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.logs.enabled = false
        // Metrics stay with Prometheus (/metrics).
        configuration.metrics.enabled = false
        configuration.diagnosticLogLevel = .warning
        let service = try OTel.bootstrap(configuration: configuration)
        enabled.store(true, ordering: .relaxed)
        return service
    }

    /// Runs `body` in a span named `name`, a child of the current context, made current for what
    /// `body` does; an error it throws sets the span's status and `error.type`. Without tracing,
    /// `body` runs with `nil` and nothing else happens.
    public static func withSpan<T, E: Error>(
        _ name: @autoclosure () -> String, ofKind kind: SpanKind,
        context: @autoclosure () -> ServiceContext? = nil,
        errorType: (E) -> String = { "\(type(of: $0))" },
        _ body: ((any Span)?) async throws(E) -> T
    ) async throws(E) -> T {
        guard isEnabled else { return try await body(nil) }
        let parent = context() ?? ServiceContext.current ?? .topLevel
        let span = startSpan(name(), context: parent, ofKind: kind)
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
        var fields: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &fields, using: DictionaryInjector())
        return fields["traceparent"]
    }

    private struct DictionaryInjector: Injector {
        func inject(_ value: String, forKey key: String, into fields: inout [String: String]) {
            fields[key] = value
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
