import Events
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
            try await collection.createIndexes(MongoCollection.purchaseIndexes)
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

    static func makePurchase(_ number: Int) -> StoredPurchase {
        let purchase = try! Purchase(
            username: "user-\(number % 100)",
            userid: "id-\(number % 100)",
            price: Price(hundredths: Int64(100 + number)),
            timestamp: Timestamp(millisecondsSinceEpoch: 1_717_170_872_204 + Int64(number))
        )
        return StoredPurchase(
            event: PurchaseEvent(purchaseId: UUID(), purchase: purchase, receivedAt: purchase.timestamp),
            partition: Int32(number % 4),
            offset: Int64(number)
        )
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
