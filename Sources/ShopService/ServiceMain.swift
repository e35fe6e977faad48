public import Configuration
import Foundation
public import Logging

/// What every executable of the shop does around its own work: read its configuration once,
/// refuse to start on a bad value with one line and exit status 78 (`EX_CONFIG`), log at
/// `LOG_LEVEL`, and turn an error that stops it into one critical log line and exit status 1.
public enum ServiceMain {
    /// Reads the configuration with `read`, or prints `<name>: <variable> <reason>` to standard
    /// error and exits 78.
    /// `config` defaults to the process's environment and `SECRETS_DIR`.
    nonisolated(nonsending) public static func configuration<Settings>(
        of name: String,
        config: ConfigReader? = nil,
        _ read: (ConfigReader) async throws(ConfigurationError) -> Settings
    ) async -> Settings {
        do {
            let reader: ConfigReader
            if let config {
                reader = config
            } else {
                reader = try await .shop(secretsFrom: ProcessInfo.processInfo.environment)
            }
            return try await read(reader)
        } catch {
            FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            exit(78)
        }
    }

    /// Runs `body` with a logger labelled `name` at `level`; an error it throws is logged as
    /// critical and ends the process with status 1.
    public static func run(
        _ name: String, logLevel: Logger.Level, _ body: @Sendable (Logger) async throws -> Void
    ) async {
        var logger = Logger(label: name)
        logger.logLevel = logLevel
        do {
            try await body(logger)
        } catch {
            logger.critical("\(name) stopped on an error", metadata: ["error": "\(error)"])
            exit(1)
        }
        logger.info("\(name) stopped")
    }
}

extension Logger.Level {
    /// Reads `LOG_LEVEL`: trace, debug, info (the services' default), notice, warning, error or
    /// critical.
    public init(config: ConfigReader, default level: Logger.Level = .info) throws(ConfigurationError) {
        let names = Logger.Level.allCases.map(\.rawValue)
        self = Logger.Level(rawValue: try config.choice("log.level", of: names, default: level.rawValue))!
    }
}
