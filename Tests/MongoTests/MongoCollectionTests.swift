import Foundation
import ShopTestSupport
import Testing

@testable import Mongo

@Suite(.serialized, .timeLimit(.minutes(3))) struct MongoCollectionTests {
    @Test func pingAnswers() async throws {
        let collection = try makeCollection()
        try await collection.client.ping()
        #expect(collection.client.connections == 16)
    }

    @Test func indexesExistAfterStartUpAndASecondCreationIsANoOp() async throws {
        let collection = try makeCollection()
        defer { Task { try? await collection.dropDatabase() } }
        let indexes: [MongoCollection.Index] = [
            .init(keys: ["owner": .int32(1), "at": .int32(-1), "_id": .int32(-1)], name: "owner_at_id"),
            .init(keys: ["number": .int32(1)], name: "number"),
        ]
        try await collection.createIndexes(indexes)
        let first = try await collection.listIndexes()
        try await collection.createIndexes(indexes)
        let second = try await collection.listIndexes()
        #expect(first == second)
        let keys = Dictionary(
            uniqueKeysWithValues: second.compactMap { index -> (String, BSONDocument)? in
                guard case .string(let name)? = index["name"], case .document(let key)? = index["key"] else {
                    return nil
                }
                return (name, key)
            }
        )
        #expect(keys["owner_at_id"]?.elements.map(\.key) == ["owner", "at", "_id"])
        #expect(keys["number"]?.elements.map(\.key) == ["number"])
        #expect(keys["_id_"] != nil)
    }

    /// cm-api's ingest asks for majority + journal before it commits offsets. The server sees the
    /// write concern: one it cannot meet (more members than it has) fails the insert.
    @Test func theWriteConcernReachesTheServer() async throws {
        let collection = try makeCollection()
        defer { Task { try? await collection.dropDatabase() } }
        let durable = try await collection.insert([document(1)], writeConcern: .majorityJournaled())
        #expect(durable.inserted == 1)
        let unmeetable = MongoCollection.WriteConcern(document: ["w": .int32(5), "wtimeout": .int64(500)])
        await #expect(throws: MongoError.self) {
            try await collection.insert([document(2)], writeConcern: unmeetable)
        }
    }

    @Test func tenThousandInsertsWithTenPercentDuplicatesStoreEachDocumentOnce() async throws {
        let collection = try makeCollection()
        let unique = (0..<9000).map { document($0, milliseconds: 1_700_000_000_000 + Int64($0)) }
        // Every tenth purchase arrives twice, as a redelivered Kafka message would.
        var all = unique + stride(from: 0, to: 9000, by: 9).map { unique[$0] }
        var generator = SystemRandomNumberGenerator()
        all.shuffle(using: &generator)
        #expect(all.count == 10_000)

        var inserted = 0
        var alreadyStored = 0
        for start in stride(from: 0, to: all.count, by: 500) {
            let result = try await collection.insert(Array(all[start..<min(start + 500, all.count)]))
            inserted += result.inserted
            alreadyStored += result.alreadyStored
        }
        #expect(inserted == 9000)
        #expect(alreadyStored == 1000)
        let stored = try await collection.find([:])
        #expect(stored.count == 9000)
        #expect(Set(stored.compactMap { if case .string(let id)? = $0["_id"] { id } else { nil } }).count == 9000)

        // Inserting everything again writes nothing.
        let again = try await collection.insert(unique)
        #expect(again == MongoCollection.InsertResult(inserted: 0, alreadyStoredIndices: Array(0..<9000)))
        try await collection.dropDatabase()
    }

    @Test func findFiltersSortsAndLimits() async throws {
        let collection = try makeCollection()
        let mine = (0..<30).map { document($0, milliseconds: 1_700_000_000_000 + Int64($0 % 10) * 1000) }
        _ = try await collection.insert(mine.shuffled() + (30..<40).map { document($0, owner: "ann") })
        let found = try await collection.find(
            ["owner": .string("joe")], sort: ["at": .int32(-1), "_id": .int32(-1)], limit: 7)
        let expected = mine.sorted {
            guard case .date(let a)? = $0["at"], case .date(let b)? = $1["at"] else { return false }
            return (a, $0.id ?? "") > (b, $1.id ?? "")
        }
        #expect(found.map(\.id) == expected.prefix(7).map(\.id))
        #expect(try await collection.find(["owner": .string("nobody")]).isEmpty)
        #expect(try await collection.find(id: .string("doc-31")) == document(31, owner: "ann"))
        #expect(try await collection.find(id: .string("doc-99")) == nil)
        try await collection.dropDatabase()
    }

    @Test func decimal128AndDatesRoundTripExactly() async throws {
        let collection = try makeCollection()
        let amounts = ["0.00", "0.01", "1195.30", "9999999999.99", "92233720368547758.07"]
        // 0001-01-01 to 9999-12-30: SecantusDB (Python datetimes) refuses years 0 and 10000.
        let times: [Int64] = [0, -1, -62_135_596_800_000, 253_402_128_000_000, 1_717_170_872_204]
        var documents: [BSONDocument] = []
        for (index, amount) in amounts.enumerated() {
            for (offset, time) in times.enumerated() {
                documents.append([
                    "_id": .string("doc-\(index)-\(offset)"), "amount": .decimal128(amount), "at": .date(time),
                ])
            }
        }
        _ = try await collection.insert(documents)
        for document in documents {
            #expect(try await collection.find(id: document["_id"]!) == document)
        }
        try await collection.dropDatabase()
    }

    @Test func aConflictOnAnotherUniqueIndexIsAWriteErrorNamingItsDocuments() async throws {
        let collection = try makeCollection()
        try await collection.createIndexes([.init(keys: ["number": .int32(1)], name: "unique_number", unique: true)])
        _ = try await collection.insert([document(1)])
        var clashDocument = document(2)
        clashDocument.elements.removeAll { $0.key == "number" }
        clashDocument.elements.append(("number", .int64(1)))
        let error = await #expect(throws: MongoError.self) {
            try await collection.insert([clashDocument, document(3)])
        }
        #expect(error?.kind == .writeFailed)
        #expect(error?.isTransient == false)
        #expect(error?.failedDocuments.map(\.document) == [clashDocument])
        #expect(error?.failedDocuments.first?.code == 11000)
        #expect(error?.failedDocuments.first?.index == 0)
        // The other document was written, and the error says so.
        #expect(error?.written == MongoCollection.InsertResult(inserted: 1, alreadyStoredIndices: []))
        #expect(try await collection.find([:]).count == 2)
        try await collection.dropDatabase()
    }

    @Test func aValidatorsRefusalNamesTheDocumentAndItsCodeAndTheRestIsWritten() async throws {
        let collection = try makeCollection()
        _ = try await collection.client.command(
            ["create": .string(collection.name), "validator": .document(["number": .document(["$lt": .int64(5)])])],
            database: collection.database)
        let error = await #expect(throws: MongoError.self) {
            try await collection.insert([document(1), document(7), document(2), document(8)])
        }
        #expect(error?.kind == .writeFailed)
        #expect(error?.failedDocuments.map(\.index) == [1, 3])
        #expect(error?.failedDocuments.map(\.code) == [121, 121])
        #expect(error?.written == MongoCollection.InsertResult(inserted: 2, alreadyStoredIndices: []))
        #expect(try await collection.count() == 2)
        try await collection.dropDatabase()
    }

    @Test func aWriteConcernFailureIsTransientEvenWhenDocumentsWereRefused() async throws {
        // Refusals are only final once the rest is durable; until then the whole write is retried.
        let server = try SecantusServer()
        let client = try MongoClient(uri: server.uri(), appName: "write-concern-test")
        let collection = client.collection("purchases", database: "concern")
        _ = try await client.command(
            ["create": .string(collection.name), "validator": .document(["number": .document(["$lt": .int64(5)])])],
            database: collection.database)
        _ = try await client.command(
            [
                "configureFailPoint": .string("failCommand"), "mode": .document(["times": .int32(1)]),
                "data": .document([
                    "failCommands": .array([.string("insert")]),
                    "writeConcernError": .document([
                        "code": .int32(64), "errmsg": .string("waiting for replication timed out"),
                    ]),
                ]),
            ], database: "admin")
        let error = await #expect(throws: MongoError.self) {
            try await collection.insert([document(1), document(7)], writeConcern: .majorityJournaled())
        }
        #expect(error?.kind == .timeout)
        #expect(error?.isTransient == true)
        #expect(error?.failedDocuments.isEmpty == true)
        // Retried, the refusal is final: the first document is already stored.
        let retried = await #expect(throws: MongoError.self) {
            try await collection.insert([document(1), document(7)], writeConcern: .majorityJournaled())
        }
        #expect(retried?.kind == .writeFailed)
        #expect(retried?.written == MongoCollection.InsertResult(inserted: 0, alreadyStoredIndices: [0]))
        await client.shutdown()
    }

    @Test func aStoppedServerGivesATransientErrorWithinTheTimeoutAndRecovers() async throws {
        let server = try SecantusServer()
        let client = try MongoClient(uri: server.uri(serverSelectionTimeoutMS: 1500))
        let collection = client.collection("purchases", database: "outage")
        try await client.ping()
        _ = try await collection.insert([document(1)])

        server.stop()
        for operation in ["ping", "insert", "find"] {
            let start = ContinuousClock.now
            let error = await #expect(throws: MongoError.self, "\(operation)") {
                switch operation {
                case "ping": try await client.ping()
                case "insert": _ = try await collection.insert([document(2)])
                default: _ = try await collection.find([:])
                }
            }
            let elapsed = ContinuousClock.now - start
            #expect(error?.isTransient == true, "\(operation): \(String(describing: error))")
            // Server selection gives up after 1.5 s; the margin is for a busy CI machine (5.7 s seen
            // once). Without the bound libmongoc would try for its default 30 s.
            #expect(elapsed < .seconds(8), "\(operation) failed after \(elapsed); the bound is 1.5 s")
        }

        try server.start()
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        var recovered = false
        while !recovered, ContinuousClock.now < deadline {
            recovered = (try? await client.ping()) != nil
        }
        #expect(recovered)
        let result = try await collection.insert([document(1), document(2)])
        #expect(
            result == MongoCollection.InsertResult(inserted: 1, alreadyStoredIndices: [0]), "data survived the restart")
        await client.shutdown()
    }

    @Test func aClientThatIsShutDownRefusesWork() async throws {
        let client = try MongoClient(uri: try SharedServer.uri())
        await client.shutdown()
        let error = await #expect(throws: MongoError.self) { try await client.ping() }
        #expect(error?.kind == .shutdown)
    }

    @Test(arguments: ["http://localhost", "mongodb://", "mongodb://host:notaport"])
    func aBadURIIsAnInvalidArgument(_ uri: String) {
        let error = #expect(throws: MongoError.self) { try MongoClient(uri: uri) }
        #expect(error?.kind == .invalidArgument)
    }

    @Test func allOperationsShareAPoolSizedByTheURIWithoutDeadlock() async throws {
        let base = try SharedServer.uri()
        let client = try MongoClient(uri: base + "&maxPoolSize=2")
        #expect(client.connections == 2)
        let collection = client.collection("purchases", database: "test-pool-\(UUID().uuidString.prefix(8))")
        // Far more concurrent operations than connections: they queue, none deadlocks.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<64 {
                group.addTask { _ = try await collection.insert([document(i)]) }
            }
            try await group.waitForAll()
        }
        #expect(try await collection.find([:]).count == 64)
        try await collection.dropDatabase()
    }
}
