/// Typed reading of the configuration variables of `CONTRACT.md`, from a dictionary (the
/// process environment in production, a literal in tests). Every failure names the variable.
public struct Environment: Sendable {
    private let values: [String: String]

    public init(_ values: [String: String]) {
        self.values = values
    }

    /// The value, with surrounding whitespace removed; `nil` when unset or empty.
    public func string(_ name: String) -> String? {
        guard let value = values[name]?.trimmingWhitespace, !value.isEmpty else { return nil }
        return value
    }

    public func string(_ name: String, default defaultValue: String) -> String {
        string(name) ?? defaultValue
    }

    public func required(_ name: String, _ what: String) throws(EnvironmentError) -> String {
        guard let value = string(name) else { throw EnvironmentError(variable: name, reason: "is required: \(what)") }
        return value
    }

    /// A TCP port, 1...65535.
    public func port(_ name: String, default defaultValue: Int) throws(EnvironmentError) -> Int {
        guard let text = string(name) else { return defaultValue }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw EnvironmentError(variable: name, reason: "must be a port number from 1 to 65535, got \"\(text)\"")
        }
        return port
    }

    /// A whole number within `range`.
    public func integer(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) throws(EnvironmentError)
        -> Int
    {
        guard let text = string(name) else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw EnvironmentError(
                variable: name,
                reason: "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \"\(text)\"")
        }
        return value
    }

    /// A whole number of milliseconds within `range`, as a `Duration`.
    public func milliseconds(
        _ name: String,
        default defaultValue: Int,
        range: ClosedRange<Int>
    ) throws(EnvironmentError) -> Duration {
        guard let text = string(name) else { return .milliseconds(defaultValue) }
        guard let value = Int(text), range.contains(value) else {
            throw EnvironmentError(
                variable: name,
                reason:
                    "must be a number of milliseconds from \(range.lowerBound) to \(range.upperBound), got \"\(text)\""
            )
        }
        return .milliseconds(value)
    }

    /// One `host:port`.
    public func hostPort(_ name: String, default defaultValue: String) throws(EnvironmentError) -> String {
        let text = string(name, default: defaultValue)
        guard Self.isHostPort(text) else {
            throw EnvironmentError(variable: name, reason: "must be host:port, got \"\(text)\"")
        }
        return text
    }

    /// A comma-separated list of `host:port`, at least one.
    public func hostPorts(_ name: String) throws(EnvironmentError) -> [String] {
        let text = try required(name, "comma-separated host:port list")
        let entries = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace }
        guard let bad = entries.first(where: { !Self.isHostPort($0) }) else { return entries }
        throw EnvironmentError(
            variable: name, reason: "must be a comma-separated host:port list, \"\(bad)\" is not host:port")
    }

    /// One of `choices`, compared case-insensitively; returns the choice as listed.
    public func choice(_ name: String, of choices: [String], default defaultValue: String) throws(EnvironmentError)
        -> String
    {
        guard let text = string(name) else { return defaultValue }
        guard let match = choices.first(where: { $0.lowercased() == text.lowercased() }) else {
            throw EnvironmentError(
                variable: name, reason: "must be one of \(choices.joined(separator: ", ")), got \"\(text)\"")
        }
        return match
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

/// A configuration variable that is missing or malformed. Its description is the one line the
/// program prints before it stops.
public struct EnvironmentError: Error, Hashable, Sendable, CustomStringConvertible {
    public let variable: String
    public let reason: String

    public init(variable: String, reason: String) {
        self.variable = variable
        self.reason = reason
    }

    public var description: String { "\(variable) \(reason)" }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
