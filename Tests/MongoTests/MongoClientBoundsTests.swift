import Foundation
import ShopTestSupport
import Testing

@testable import Mongo

/// No MongoDB call waits without a bound: a server that stops answering fails a call within the
/// socket timeout (a default where the URI sets none, not libmongoc's 300 s), and operations
/// queued for a connection are bounded in number and in how late they may start. Each test has a
/// server of its own: the `failCommand` failpoint is one per server.
@Suite(.serialized, .timeLimit(.minutes(2))) struct MongoClientBoundsTests {
    /// Makes `server` hold every `find` of clients named `appName` for `milliseconds` (a
    /// `failCommand` failpoint, as a hung server would), `times` times.
    func blockFinds(on server: SecantusServer, of appName: String, for milliseconds: Int, times: Int) async throws {
        let admin = try MongoClient(uri: server.uri(), appName: "operator")
        _ = try await admin.command(
            [
                "configureFailPoint": .string("failCommand"),
                "mode": .document(["times": .int32(Int32(times))]),
                "data": .document([
                    "failCommands": .array([.string("find")]), "blockConnection": .bool(true),
                    "blockTimeMS": .int32(Int32(milliseconds)), "appName": .string(appName),
                ]),
            ], database: "admin")
    }

    @Test func theTimeoutsTheURILeavesUnsetHaveDefaultsAndItsOwnWin() throws {
        let defaults = MongoClient.Timeouts(socket: .seconds(30), serverSelection: .seconds(10))
        #expect(try MongoClient.effectiveTimeouts(uri: "mongodb://h:27017/", defaults: defaults) == defaults)
        let own = try MongoClient.effectiveTimeouts(
            uri: "mongodb://h:27017/?socketTimeoutMS=1500&serverSelectionTimeoutMS=700", defaults: defaults)
        #expect(own == MongoClient.Timeouts(socket: .milliseconds(1500), serverSelection: .milliseconds(700)))
    }

    @Test func aServerThatStopsAnsweringFailsTheCallWithinTheSocketTimeout() async throws {
        let server = try SecantusServer()
        let appName = "hung"
        let client = try MongoClient(uri: server.uri(), appName: appName, timeouts: .init(socket: .milliseconds(500)))
        let collection = client.collection("c", database: "bounds-\(UUID().uuidString.prefix(8))")
        #expect(client.socketTimeout == .milliseconds(500))
        _ = try await collection.find([:])
        // Twice: libmongoc retries a read once.
        try await blockFinds(on: server, of: appName, for: 5000, times: 2)
        let start = ContinuousClock.now
        await #expect(throws: MongoError.self) { try await collection.find([:]) }
        #expect(ContinuousClock.now - start < .seconds(3), "gave up after \(ContinuousClock.now - start)")
    }

    @Test func operationsWaitingForAConnectionAreBoundedInNumberAndInTime() async throws {
        let server = try SecantusServer()
        let appName = "queue"
        let client = try MongoClient(
            uri: server.uri(), appName: appName, connections: 1,
            queue: .init(maximumWaiting: 1, maximumWait: .milliseconds(300)))
        let collection = client.collection("c", database: "bounds-\(UUID().uuidString.prefix(8))")
        _ = try await collection.find([:])
        try await blockFinds(on: server, of: appName, for: 1500, times: 1)
        let holding = Task { try await collection.find([:]) }
        #expect(try await waitUntil(timeout: .seconds(5)) { client.operationsRunning == 1 })
        // The one connection is held for 1.5 s: the next call waits for it, past its 300 ms.
        let late = Task { try await collection.find([:]) }
        #expect(try await waitUntil(timeout: .seconds(5)) { client.operationsWaiting == 1 })
        // One more than the queue takes fails at once.
        let start = ContinuousClock.now
        let refused = await #expect(throws: MongoError.self) { try await collection.find([:]) }
        #expect(ContinuousClock.now - start < .milliseconds(200))
        #expect(refused?.message.contains("already wait") == true, "\(String(describing: refused))")
        let tooLate = await #expect(throws: MongoError.self) { try await late.value }
        #expect(tooLate?.message.contains("start too late") == true, "\(String(describing: tooLate))")
        _ = try await holding.value
        _ = try await collection.find([:])
    }
}
