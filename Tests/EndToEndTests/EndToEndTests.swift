import AsyncHTTPClient
import Foundation
import NIOCore
import ShopTestSupport
import Testing

/// The whole shop as `make run` starts it: kafka-mock, SecantusDB, cm-api and cm-server as
/// processes on free ports, checked through HTTP only.
final class Shop: @unchecked Sendable {
    let kafka: ChildProcess
    let bootstrap: String
    let mongoURI: String
    let database = "e2e-\(UUID().uuidString.prefix(8).lowercased())"
    let apiPort: Int
    let serverPort: Int
    private(set) var api: ChildProcess
    private(set) var server: ChildProcess

    var serverURL: String { "http://127.0.0.1:\(serverPort)" }
    var apiURL: String { "http://127.0.0.1:\(apiPort)" }

    init() async throws {
        kafka = try ChildProcess("kafka-mock", environment: ["KAFKA_TOPIC": "e2e-purchases"])
        var line: Substring?
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while line == nil, ContinuousClock.now < deadline {
            line = kafka.output.split(separator: "\n").first { $0.hasPrefix("bootstrap ") }
            if line == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        bootstrap = String(try #require(line, "kafka-mock printed its address: \(kafka.output)").dropFirst(10))
        mongoURI = try SharedServer.uri()
        apiPort = try freeLoopbackPort()
        serverPort = try freeLoopbackPort()
        api = try Self.startAPI(bootstrap: bootstrap, mongoURI: mongoURI, database: database, port: apiPort)
        try await Self.waitReady("http://127.0.0.1:\(apiPort)", api)
        server = try ChildProcess(
            "cm-server",
            environment: [
                "KAFKA_BROKERS": bootstrap, "KAFKA_TOPIC": "e2e-purchases", "PORT": "\(serverPort)",
                "CM_API_HOST": "127.0.0.1:\(apiPort)", "LOG_LEVEL": "warning",
            ])
        try await Self.waitReady("http://127.0.0.1:\(serverPort)", server)
    }

    static func startAPI(bootstrap: String, mongoURI: String, database: String, port: Int) throws -> ChildProcess {
        try ChildProcess(
            "cm-api",
            environment: [
                "KAFKA_BROKERS": bootstrap, "KAFKA_TOPIC": "e2e-purchases", "KAFKA_GROUPID": "e2e",
                "MONGODB_URI": mongoURI, "MONGODB_DB": database, "PORT": "\(port)", "LOG_LEVEL": "warning",
            ])
    }

    static func waitReady(_ base: String, _ child: ChildProcess) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while child.process.isRunning, ContinuousClock.now < deadline {
            if (try? await get("\(base)/readyz"))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("not ready: \(child.output)")
        throw CancellationError()
    }

    func restartAPI() async throws {
        api = try Self.startAPI(bootstrap: bootstrap, mongoURI: mongoURI, database: database, port: apiPort)
        try await Self.waitReady(apiURL, api)
    }

    func stop() async {
        for child in [server, api, kafka] where child.process.isRunning {
            child.signal(SIGTERM)
            _ = await child.waitForExit(timeout: .seconds(20))
        }
    }

    static func get(_ url: String) async throws -> (status: Int, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 8 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    static func post(_ url: String, json: String, headers: [(String, String)] = []) async throws -> (
        status: Int, body: [String: Any]
    ) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 16)
        let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] ?? [:]
        return (Int(response.status.code), object)
    }

    /// Every purchase of `username` through cm-server, all pages.
    func purchases(of username: String) async throws -> [[String: Any]] {
        var all: [[String: Any]] = []
        var cursor: String?
        let path = username.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        repeat {
            var url = "\(serverURL)/getAllUserBuys/\(path)?limit=1000"
            if let cursor { url += "&cursor=\(cursor)" }
            let (status, body) = try await Self.get(url)
            #expect(status == 200, "\(body)")
            let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
            all += object["purchases"] as? [[String: Any]] ?? []
            cursor = object["nextCursor"] as? String
        } while cursor != nil
        return all
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct EndToEndTests {
    @Test func theWholeShop() async throws {
        let shop = try await Shop()

        // The original README's three calls, unchanged.
        let original = #"{"username":"joe","userid":"005","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}"#
        let bought = try await Shop.post("\(shop.serverURL)/buy", json: original)
        #expect(bought.status == 200)
        #expect(bought.body["status"] as? String == "Ok!")
        #expect(bought.body["message"] as? String == "Message successfully sent to Kafka!")
        let joeID = try #require(bought.body["purchaseId"] as? String)
        let health = try await Shop.get("\(shop.serverURL)/healthz")
        #expect(health.status == 200 && health.body == "Success")

        // The receipt: 404 until cm-api stored it, then 200.
        var receipt = try await Shop.get("\(shop.apiURL)/purchases/\(joeID)")
        #expect(receipt.status == 404 || receipt.status == 200)
        let receiptDeadline = ContinuousClock.now.advanced(by: .seconds(10))
        while receipt.status != 200, ContinuousClock.now < receiptDeadline {
            try await Task.sleep(for: .milliseconds(50))
            receipt = try await Shop.get("\(shop.apiURL)/purchases/\(joeID)")
        }
        #expect(receipt.status == 200)
        #expect(try await Shop.get("\(shop.apiURL)/purchases/\(UUID().uuidString.lowercased())").status == 404)
        let joe = try await shop.purchases(of: "joe")
        #expect(joe.count == 1)
        #expect(joe.first?["purchaseId"] as? String == joeID)
        #expect(joe.first?["price"] as? String == "1195.30")
        #expect(joe.first?["timestamp"] as? String == "2024-05-31T15:54:32.204Z")

        // 2,000 purchases, 20 concurrent clients, 40 users: each listed once, newest first.
        let start = ContinuousClock.now
        let sent = try await withThrowingTaskGroup(of: [(user: Int, id: String)].self) { group in
            for client in 0..<20 {
                group.addTask {
                    var mine: [(user: Int, id: String)] = []
                    for n in 0..<100 {
                        let user = (client * 100 + n) % 40
                        let second = String(format: "%02d", n % 60)
                        let json =
                            #"{"username":"shopper \#(user)","userid":"u\#(user)","price":"\#(n).\#(client % 10)0","timestamp":"2025-01-0\#(1 + client % 9)T10:\#(String(format: "%02d", n / 60)):\#(second).000Z"}"#
                        let answer = try await Shop.post("\(shop.serverURL)/buy", json: json)
                        #expect(answer.status == 200)
                        mine.append((user, answer.body["purchaseId"] as? String ?? ""))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(sent.count == 2000)
        var complete = false
        let listDeadline = ContinuousClock.now.advanced(by: .seconds(30))
        while !complete, ContinuousClock.now < listDeadline {
            var total = 0
            for user in 0..<40 { total += try await shop.purchases(of: "shopper \(user)").count }
            complete = total == 2000
            if !complete { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(complete, "all 2,000 listed")
        print("e2e: 2,000 purchases POSTed and all listed after \(ContinuousClock.now - start)")
        for user in 0..<40 {
            let listed = try await shop.purchases(of: "shopper \(user)")
            let ids = listed.compactMap { $0["purchaseId"] as? String }
            #expect(Set(ids) == Set(sent.filter { $0.user == user }.map(\.id)))
            #expect(ids.count == Set(ids).count, "each exactly once")
            // Same-format UTC timestamps sort as text; a space separates them from the id.
            let order = listed.map { "\(($0["timestamp"] as? String) ?? "") \(($0["purchaseId"] as? String) ?? "")" }
            #expect(order == order.sorted(by: >), "newest first, purchaseId breaking ties")
        }

        // Retries with the same Idempotency-Key store one purchase.
        let retry = #"{"username":"careful","userid":"c1","price":"9.99"}"#
        var retriedIDs: Set<String> = []
        for _ in 0..<3 {
            let answer = try await Shop.post(
                "\(shop.serverURL)/buy", json: retry, headers: [("Idempotency-Key", "k-1")])
            #expect(answer.status == 200)
            retriedIDs.insert(answer.body["purchaseId"] as? String ?? "")
        }
        #expect(retriedIDs.count == 1)

        // SIGTERM to cm-api exits 0; purchases made while it is down are stored after a restart.
        shop.api.signal(SIGTERM)
        #expect(await shop.api.waitForExit(timeout: .seconds(20)))
        #expect(shop.api.process.terminationStatus == 0, "\(shop.api.output)")
        let whileDown = try await Shop.post(
            "\(shop.serverURL)/buy", json: #"{"username":"careful","userid":"c1","price":"1.00"}"#)
        #expect(whileDown.status == 200, "cm-server takes purchases while cm-api is down")
        #expect(try await Shop.get("\(shop.serverURL)/getAllUserBuys/careful").status == 502)
        try await shop.restartAPI()
        var careful: [[String: Any]] = []
        let restartDeadline = ContinuousClock.now.advanced(by: .seconds(30))
        repeat {
            careful = try await shop.purchases(of: "careful")
            if careful.count < 2 { try await Task.sleep(for: .milliseconds(200)) }
        } while careful.count < 2 && ContinuousClock.now < restartDeadline
        #expect(careful.count == 2, "the retried purchase once, and the one made while cm-api was down")
        #expect(try await shop.purchases(of: "joe").count == 1)

        // SIGTERM to both services: exit 0.
        shop.server.signal(SIGTERM)
        shop.api.signal(SIGTERM)
        #expect(await shop.server.waitForExit(timeout: .seconds(30)))
        #expect(await shop.api.waitForExit(timeout: .seconds(30)))
        #expect(shop.server.process.terminationStatus == 0, "\(shop.server.output)")
        #expect(shop.api.process.terminationStatus == 0, "\(shop.api.output)")
        await shop.stop()
    }

    /// kafka-mock's control (SIGUSR1 down, SIGUSR2 up): cm-server turns not-ready and answers 503
    /// within the bound while Kafka is down, and takes purchases again once it is back.
    @Test func kafkaDownAndBackThroughTheMocksControl() async throws {
        let shop = try await Shop()
        let json = #"{"username":"fault","userid":"f1","price":"2.50"}"#
        #expect(try await Shop.post("\(shop.serverURL)/buy", json: json).status == 200)

        shop.kafka.signal(SIGUSR1)
        var ready = 200
        let downDeadline = ContinuousClock.now.advanced(by: .seconds(20))
        while ready == 200, ContinuousClock.now < downDeadline {
            ready = try await Shop.get("\(shop.serverURL)/readyz").status
        }
        #expect(ready == 503, "not ready while Kafka is down")
        let start = ContinuousClock.now
        let refused = try await Shop.post("\(shop.serverURL)/buy", json: json, headers: [("Idempotency-Key", "f-2")])
        #expect(refused.status == 503)
        #expect(refused.body["possiblyPersisted"] as? Bool == false)
        // The producer has heard ALL_BROKERS_DOWN by now: refused after its 0.5 s probe, not after
        // KAFKA_DELIVERY_TIMEOUT_MS (10 s).
        #expect(ContinuousClock.now - start < .seconds(5), "a fast 503 while every broker is down")

        shop.kafka.signal(SIGUSR2)
        var accepted = 0
        let upDeadline = ContinuousClock.now.advanced(by: .seconds(40))
        while accepted != 200, ContinuousClock.now < upDeadline {
            accepted = try await Shop.post("\(shop.serverURL)/buy", json: json, headers: [("Idempotency-Key", "f-2")])
                .status
        }
        #expect(accepted == 200, "purchases are taken again once Kafka is back")
        var listed: [[String: Any]] = []
        let listDeadline = ContinuousClock.now.advanced(by: .seconds(20))
        repeat {
            listed = try await shop.purchases(of: "fault")
            if listed.count < 2 { try await Task.sleep(for: .milliseconds(200)) }
        } while listed.count < 2 && ContinuousClock.now < listDeadline
        #expect(listed.count == 2, "the first purchase and the retried one, once")
        await shop.stop()
    }
}
