public import Configuration
import Foundation
import SystemPackage

/// A configuration variable that is missing or malformed. Its description is the one line the
/// program prints before it stops with exit status 78 (`EX_CONFIG`).
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The environment variable, as an operator sets it (`KAFKA_BROKERS`).
    public let variable: String
    public let reason: String

    public init(variable: String, reason: String) {
        self.variable = variable
        self.reason = reason
    }

    public var description: String { "\(variable) \(reason)" }
}

extension ConfigReader {
    /// The services' configuration: environment variables (the process's, or `variables` in
    /// tests). Keys are lowercase and dotted (`kafka.brokers`); swift-configuration maps them to
    /// the contract's variable names (`KAFKA_BROKERS`). Values named secret are redacted in
    /// swift-configuration's own logs.
    public static func shop(environment variables: [String: String]? = nil) -> ConfigReader {
        ConfigReader(provider: environmentProvider(variables ?? ProcessInfo.processInfo.environment))
    }

    /// The process's configuration: its environment, then, when `SECRETS_DIR` names a directory,
    /// one file per value in it, as Kubernetes mounts a Secret: `AUTH_JWT_SECRET` is read from
    /// the file `auth-jwt-secret` (swift-configuration's `DirectoryFilesProvider`; every value
    /// read there is a secret). A variable in the environment wins over a file.
    public static func shop(secretsFrom variables: [String: String]) async throws(ConfigurationError) -> ConfigReader {
        let environment = environmentProvider(variables)
        guard let directory = variables["SECRETS_DIR"], !directory.isEmpty else {
            return ConfigReader(provider: environment)
        }
        do {
            let files = try await DirectoryFilesProvider(directoryPath: FilePath(directory))
            return ConfigReader(providers: [environment, files])
        } catch {
            throw ConfigurationError(variable: "SECRETS_DIR", reason: "cannot be read: \(directory) (\(error))")
        }
    }

    private static func environmentProvider(_ variables: [String: String]) -> EnvironmentVariablesProvider {
        EnvironmentVariablesProvider(
            environmentVariables: variables,
            secretsSpecifier: .dynamic { name, _ in
                name.hasSuffix("PASSWORD") || name.hasSuffix("SECRET") || name.hasSuffix("TOKEN")
            })
    }

    /// The environment variable a key is read from: `cm.api.timeout.ms` -> `CM_API_TIMEOUT_MS`.
    public static func variable(_ key: String) -> String {
        key.uppercased().replacing(".", with: "_")
    }

    /// The value, with surrounding whitespace removed; `nil` when unset or blank.
    public func text(_ key: String, isSecret: Bool = false) -> String? {
        guard let value = string(forKey: ConfigKey(key), isSecret: isSecret)?.trimmingCharacters(in: .whitespaces),
            !value.isEmpty
        else { return nil }
        return value
    }

    public func text(_ key: String, default defaultValue: String) -> String {
        text(key) ?? defaultValue
    }

    public func required(_ key: String, _ what: String, isSecret: Bool = false) throws(ConfigurationError) -> String {
        guard let value = text(key, isSecret: isSecret) else { throw invalid(key, "is required: \(what)") }
        return value
    }

    /// A TCP port, 1...65535.
    public func port(_ key: String, default defaultValue: Int) throws(ConfigurationError) -> Int {
        guard let text = text(key) else { return defaultValue }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw invalid(key, "must be a port number from 1 to 65535, got \"\(text)\"")
        }
        return port
    }

    /// A whole number within `range`.
    public func integer(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) throws(ConfigurationError)
        -> Int
    {
        guard let text = text(key) else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw invalid(
                key, "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \"\(text)\"")
        }
        return value
    }

    /// A whole number of milliseconds within `range`, as a `Duration`.
    public func milliseconds(_ key: String, default defaultValue: Int, range: ClosedRange<Int>)
        throws(ConfigurationError) -> Duration
    {
        guard let text = text(key) else { return .milliseconds(defaultValue) }
        guard let value = Int(text), range.contains(value) else {
            throw invalid(
                key,
                "must be a number of milliseconds from \(range.lowerBound) to \(range.upperBound), got \"\(text)\"")
        }
        return .milliseconds(value)
    }

    /// One `host:port`.
    public func hostPort(_ key: String, default defaultValue: String) throws(ConfigurationError) -> String {
        let text = text(key, default: defaultValue)
        guard Self.isHostPort(text) else { throw invalid(key, "must be host:port, got \"\(text)\"") }
        return text
    }

    /// A comma-separated list of `host:port`, at least one.
    public func hostPorts(_ key: String) throws(ConfigurationError) -> [String] {
        let text = try required(key, "comma-separated host:port list")
        let entries = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard let bad = entries.first(where: { !Self.isHostPort($0) }) else { return entries }
        throw invalid(key, "must be a comma-separated host:port list, \"\(bad)\" is not host:port")
    }

    /// One of `choices`, compared case-insensitively; returns the choice as listed.
    public func choice(_ key: String, of choices: [String], default defaultValue: String) throws(ConfigurationError)
        -> String
    {
        guard let text = text(key) else { return defaultValue }
        guard let match = choices.first(where: { $0.lowercased() == text.lowercased() }) else {
            throw invalid(key, "must be one of \(choices.joined(separator: ", ")), got \"\(text)\"")
        }
        return match
    }

    /// The error for `key`, naming its environment variable.
    public func invalid(_ key: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(variable: Self.variable(key), reason: reason)
    }

    private static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":") else { return false }
        let host = text[..<colon]
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port), !host.isEmpty else {
            return false
        }
        return !host.contains(where: { $0 == " " || $0 == "/" })
    }
}
