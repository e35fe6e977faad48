import AsyncHTTPClient
import Events
import Foundation
import Kafka
import Logging
import NIOCore
import ShopTestSupport
import Testing

/// The `cm-server` executable itself, started as a child process against the mock cluster.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ProcessTests {
    /// Beside the test bundle in the build folder (`swift build --build-tests` builds both).
    static var executable: URL {
        Bundle.main.executableURL!.deletingLastPathComponent().appendingPathComponent("cm-server")
    }

    /// Starts cm-server with `environment` added; its output goes to a file for the failure message.
    static func start(_ environment: [String: String]) throws -> (Process, URL) {
        let process = Process()
        process.executableURL = executable
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("cm-server-\(UUID().uuidString).log")
        try #require(FileManager.default.createFile(atPath: log.path, contents: nil))
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return (process, log)
    }

    static func get(_ url: String) async -> Int? {
        let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(3))
        return response.map { Int($0.status.code) }
    }

    static func waitForExit(_ process: Process, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !process.isRunning
    }

    @Test func aBadSettingStopsItWithOneLineNamingTheVariable() async throws {
        let (process, log) = try Self.start(["KAFKA_BROKERS": "localhost:9092", "PORT": "70000"])
        #expect(await Self.waitForExit(process, timeout: .seconds(10)))
        #expect(process.terminationStatus == 78)
        let output = try String(contentsOf: log, encoding: .utf8)
        #expect(output.split(separator: "\n").count == 1)
        #expect(output.contains("PORT"))
    }

    /// SIGTERM while purchases wait for a slow broker: every request in flight is answered 200,
    /// each of them is on the topic, and the process exits 0 within the bound.
    @Test func sigtermFinishesTheRequestsInFlightFlushesAndExitsZero() async throws {
        let cluster = try KafkaMockCluster()
        let topic = "sigterm-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic(topic, partitions: 2)
        let port = try freeLoopbackPort()
        let (process, log) = try Self.start([
            "KAFKA_BROKERS": cluster.bootstrapServers, "KAFKA_TOPIC": topic, "PORT": "\(port)",
            "LOG_LEVEL": "info", "KAFKA_DELIVERY_TIMEOUT_MS": "8000", "SHUTDOWN_TIMEOUT_MS": "15000",
        ])
        defer { if process.isRunning { process.terminate() } }
        let base = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while process.isRunning, await Self.get("\(base)/readyz") != 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        try #require(
            await Self.get("\(base)/readyz") == 200, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")

        // Each acknowledgement now takes 2 s, so the purchases below are in flight at SIGTERM.
        try cluster.setRoundTripTime(of: 1, to: .seconds(2))
        // One connection per purchase, so that all 20 are at the server (not queued in a pool).
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 20)
        let answers = try await HTTPClient.withHTTPClient(configuration: clientConfiguration) { http in
            try await withThrowingTaskGroup(of: String?.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        var request = HTTPClientRequest(url: "\(base)/buy")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(
                            ByteBuffer(string: #"{"username":"u\#(i)","userid":"\#(i)","price":"1.00"}"#))
                        let response = try await http.execute(request, timeout: .seconds(30))
                        let body = try await response.body.collect(upTo: 1 << 16)
                        guard response.status == .ok else { return nil }
                        let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
                        return object?["purchaseId"] as? String
                    }
                }
                try await Task.sleep(for: .milliseconds(700))
                kill(process.processIdentifier, SIGTERM)
                return try await group.reduce(into: [String?]()) { $0.append($1) }
            }
        }
        let signalled = ContinuousClock.now
        #expect(await Self.waitForExit(process, timeout: .seconds(20)))
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(ContinuousClock.now - signalled < .seconds(16))
        #expect(answers.count == 20 && answers.allSatisfy { $0 != nil }, "every request in flight got its 200")

        try cluster.setRoundTripTime(of: 1, to: .zero)
        var configuration = KafkaConsumerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers]),
            groupID: "check-\(UUID().uuidString.prefix(8))")
        configuration.sessionTimeout = .seconds(6)
        var logger = Logger(label: "process-tests")
        logger.logLevel = .error
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: logger)
        var messages: [KafkaConsumerMessage] = []
        let readDeadline = ContinuousClock.now.advanced(by: .seconds(30))
        while messages.count < 20, ContinuousClock.now < readDeadline {
            messages += try await consumer.poll(maxMessages: 100, maxWait: .milliseconds(200))
        }
        await consumer.close()
        let stored = Set(
            try messages.map { try PurchaseEvent(kafkaValue: $0.value).purchaseId.uuidString.lowercased() })
        #expect(stored == Set(answers.compactMap { $0 }))
    }
}
