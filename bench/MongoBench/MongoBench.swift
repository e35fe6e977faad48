import Foundation
import Mongo

/// `mongo-bench`: bulk-insert throughput through the Mongo binding, batched and one by one, so
/// the batching win is a measured number.
///
///     mongo-bench [documents] [batch sizes, comma-separated]
///
/// Uses `MONGODB_URI` (default `mongodb://127.0.0.1:27017`) and a throwaway database it drops.
@main
struct MongoBench {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        let documents = arguments.first.flatMap(Int.init) ?? 5000
        let batchSizes =
            arguments.dropFirst().first.map { $0.split(separator: ",").compactMap { Int($0) } } ?? [500, 1]
        let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] ?? "mongodb://127.0.0.1:27017"
        let client = try MongoClient(uri: uri)
        try await client.ping()
        print("mongo-bench: \(documents) purchases per run, libmongoc \(MongoLibrary.version), \(uri)")
        print("batch size   documents/s   seconds")
        for batchSize in batchSizes {
            let collection = client.collection("purchases", database: "bench-\(UUID().uuidString.prefix(8))")
            try await collection.createIndexes(listIndexes)
            let purchases = (0..<documents).map(makePurchase)
            let start = ContinuousClock.now
            var inserted = 0
            for first in stride(from: 0, to: purchases.count, by: batchSize) {
                inserted += try await collection.insert(
                    Array(purchases[first..<min(first + batchSize, purchases.count)])
                )
                .inserted
            }
            let elapsed = ContinuousClock.now - start
            try await collection.dropDatabase()
            guard inserted == documents else {
                throw BenchError("only \(inserted) of \(documents) inserted")
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(documents) / seconds
            print(
                String(batchSize).padding(toLength: 13, withPad: " ", startingAt: 0)
                    + String(Int(rate)).padding(toLength: 14, withPad: " ", startingAt: 0)
                    + String(format: "%.2f", seconds)
            )
        }
        await client.shutdown()
    }

    /// cm-api's indexes on its purchases (`docs/CONTRACT.md`), which every insert also updates.
    static let listIndexes: [MongoCollection.Index] = [
        .init(
            keys: ["username": .int32(1), "timestamp": .int32(-1), "_id": .int32(-1)], name: "username_timestamp_id"),
        .init(keys: ["userid": .int32(1), "timestamp": .int32(-1)], name: "userid_timestamp"),
    ]

    /// A document of the contract's shape (the binding knows no purchase type).
    static func makePurchase(_ number: Int) -> BSONDocument {
        [
            "_id": .string(UUID().uuidString.lowercased()),
            "username": .string("user-\(number % 100)"),
            "userid": .string("id-\(number % 100)"),
            "price": .decimal128("\(1 + number / 100).\(String(format: "%02d", number % 100))"),
            "timestamp": .date(1_717_170_872_204 + Int64(number)),
            "receivedAt": .date(1_717_170_872_204 + Int64(number)),
            "partition": .int32(Int32(number % 4)),
            "offset": .int64(Int64(number)),
        ]
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
