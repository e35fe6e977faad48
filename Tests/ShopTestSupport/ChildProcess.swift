public import Foundation

/// One of this package's executables, run as a child process by a test.
public struct ChildProcess: Sendable {
    public let process: Process
    /// Where its standard output and error go, for failure messages.
    public let log: URL

    /// `name` from the build folder, beside the test bundle (`swift build --build-tests` builds
    /// both), with `environment` added to this process's.
    public init(_ name: String, environment: [String: String]) throws {
        let process = Process()
        process.executableURL = Bundle.main.executableURL!.deletingLastPathComponent().appendingPathComponent(name)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        log = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
            throw MongoTestError("cannot create \(log.path)")
        }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
    }

    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Whether it exited within `timeout`.
    public func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !process.isRunning
    }

    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }
}
