import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Kafka
import PurchaseDomain
import PurchaseWire
import ShopKafka
import ShopService
import ShopTestSupport
import Synchronization
import Testing

@testable import CMAPI

/// cm-api's read side over the in-memory store (the MongoDB store has its own live tests).
@Suite struct PurchaseListRouteTests {
    static func stored(user: String, count: Int, sameTimestampEvery: Int = 1) throws -> [StoredPurchase] {
        try (0..<count).map { n in
            let purchase = try Purchase(
                username: user, userid: "uid-\(user)", price: Price(hundredths: Int64(n * 7 + 1)),
                // Groups of equal timestamps exercise the purchaseId tie-break.
                timestamp: Timestamp(millisecondsSinceEpoch: 1_700_000_000_000 + Int64(n / sameTimestampEvery) * 1000))
            let event = PurchaseEvent(
                purchaseId: .randomPurchaseID(), purchase: purchase,
                receivedAt: Timestamp(millisecondsSinceEpoch: 1_700_000_000_000))
            return StoredPurchase(event: event, partition: 0, offset: Int64(n))
        }
    }

    func withRouter(_ body: @escaping @Sendable (InMemoryPurchaseStore, any TestClientProtocol) async throws -> Void)
        async throws
    {
        let store = InMemoryPurchaseStore()
        let status = IngestStatus()
        status.setRunning(true)
        let app = Application(router: buildRouter(store: store, status: status))
        try await app.test(.router) { client in try await body(store, client) }
    }

    @Test func paginationOver2500PurchasesOfOneUserGivesEachExactlyOnceNewestFirst() async throws {
        try await withRouter { store, client in
            let purchases = try Self.stored(user: "big spender", count: 2500, sameTimestampEvery: 3)
            _ = try await store.insert(purchases)
            _ = try await store.insert(try Self.stored(user: "someone else", count: 50))
            let expected = purchases.sorted { $0.resumePoint > $1.resumePoint }.map(\.id)
            for limit in [1000, 97] {
                let items = try await allPages(client, path: "/buyList/big%20spender", limit: limit)
                #expect(items.count == 2500)
                #expect(Set(items.map(\.purchaseId)).count == 2500)
                #expect(items.map(\.purchaseId) == expected, "newest first, purchaseId breaking ties")
            }
        }
    }

    /// A document another writer left that is not a purchase does not take its page down: the
    /// page is served without it, every other purchase still listed once across the pages, and
    /// the document is counted (the alert's metric) each time a read meets it.
    @Test func anUnreadableDocumentIsLeftOutOfItsPageAndCounted() async throws {
        try await withRouter { store, client in
            let purchases = try Self.stored(user: "joe", count: 30)
            _ = try await store.insert(purchases)
            let sorted = purchases.sorted { $0.resumePoint > $1.resumePoint }
            // Just before the 10th newest, so the last of a first page of 10 (its place
            // decides the next cursor), and one with no place in the list at all.
            let between = PurchasePageResumePoint(
                timestamp: sorted[9].event.purchase.timestamp, purchaseId: "ffffffff-ffff-ffff-ffff-ffffffffffff")
            store.addUnreadable(
                UnreadableDocument(id: between.purchaseId, reason: "price is a double", resumePoint: between),
                username: "joe")
            store.addUnreadable(
                UnreadableDocument(id: "not-a-uuid", reason: "timestamp is not a date", resumePoint: nil),
                username: "joe")
            let before = try await Self.counted(client)
            for limit in [10, 11, 100] {
                let items = try await allPages(client, path: "/buyList/joe", limit: limit)
                #expect(items.map(\.purchaseId) == sorted.map(\.id), "limit \(limit)")
            }
            #expect(try await Self.counted(client) > before)
        }
    }

    static func counted(_ client: some TestClientProtocol) async throws -> Double {
        let text = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
        return text.split(separator: "\n").first { $0.hasPrefix("cmapi_unreadable_documents_total ") }
            .flatMap { Double($0.split(separator: " ")[1]) } ?? -1
    }

    @Test func theListKeepsTheOriginalShapeAndDefaultsTo100() async throws {
        try await withRouter { store, client in
            _ = try await store.insert(try Self.stored(user: "joe", count: 120))
            try await client.execute(uri: "/buyList/joe", method: .get) { response in
                #expect(response.status == .ok)
                let object = try #require(
                    JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(object["status"] as? String == "Ok!")
                let purchases = try #require(object["purchases"] as? [[String: Any]])
                #expect(purchases.count == 100)
                #expect(Set(purchases[0].keys) == ["_id", "purchaseId", "username", "userid", "price", "timestamp"])
                #expect(purchases[0]["price"] is String)
                #expect(object["nextCursor"] is String)
            }
            try await client.execute(uri: "/buyList/nobody", method: .get) { response in
                #expect(response.status == .ok)
                let page = try JSONDecoder().decode(PurchaseListPage.self, from: response.body)
                #expect(page.purchases.isEmpty && page.nextCursor == nil)
            }
        }
    }

    /// A polling page sends back the tag it has: 304 with no body while the page is the same,
    /// 200 with a new tag once a purchase changes it. Each page of a list has its own tag.
    @Test func aPageNotChangedIs304ToItsTag() async throws {
        try await withRouter { store, client in
            _ = try await store.insert(try Self.stored(user: "joe", count: 15))
            func get(_ uri: String, ifNoneMatch: String? = nil) async throws -> (HTTPResponse.Status, String?, String) {
                var headers = HTTPFields()
                if let ifNoneMatch { headers[.ifNoneMatch] = ifNoneMatch }
                return try await client.execute(uri: uri, method: .get, headers: headers) { response in
                    if response.status == .ok || response.status == .notModified {
                        #expect(response.headers[.cacheControl] == "private, no-cache")
                    }
                    return (response.status, response.headers[.eTag], String(buffer: response.body))
                }
            }
            let (status, tag, body) = try await get("/buyList/joe?limit=10")
            #expect(status == .ok)
            let first = try #require(tag)
            #expect(first.hasPrefix("\"") && first.hasSuffix("\"") && first.count == 34)
            for same in [first, "W/\(first)", "\"other\", \(first)", "*"] {
                let (again, againTag, againBody) = try await get("/buyList/joe?limit=10", ifNoneMatch: same)
                #expect(again == .notModified, "If-None-Match: \(same)")
                #expect(againTag == first)
                #expect(againBody.isEmpty)
            }
            for other in ["\"other\"", first.dropLast() + "0\"", "garbage", ""] {
                let (again, againTag, againBody) = try await get("/buyList/joe?limit=10", ifNoneMatch: String(other))
                #expect(again == .ok, "If-None-Match: \(other)")
                #expect(againTag == first && againBody == body, "\(againBody) vs \(body)")
            }
            // Another page, another limit: other tags.
            let cursor = try JSONDecoder().decode(PurchaseListPage.self, from: ByteBuffer(string: body)).nextCursor
            let (_, secondPage, _) = try await get("/buyList/joe?limit=10&cursor=\(try #require(cursor))")
            let (_, longer, _) = try await get("/buyList/joe?limit=11")
            #expect(Set([first, secondPage, longer]).count == 3)

            // A new purchase (newest): the first page changed, so 200 and a new tag.
            _ = try await store.insert(
                try Self.stored(user: "joe", count: 1).map { stored in
                    var newest = stored
                    newest.event.purchase = try Purchase(
                        username: "joe", userid: "uid-joe", price: Price(hundredths: 5),
                        timestamp: Timestamp(millisecondsSinceEpoch: 1_800_000_000_000))
                    return newest
                })
            let (changed, changedTag, changedBody) = try await get("/buyList/joe?limit=10", ifNoneMatch: first)
            #expect(changed == .ok)
            #expect(changedTag != first && changedBody != body)
            #expect(try await get("/buyList/joe?limit=10", ifNoneMatch: changedTag).0 == .notModified)
        }
    }

    @Test(arguments: [
        "/buyList/joe?limit=0", "/buyList/joe?limit=1001", "/buyList/joe?limit=x", "/buyList/joe?cursor=forged",
        "/buyList/joe?cursor=MTIzLm5vdC1hLXV1aWQ", "/buyList/%ZZ", "/purchases/not-a-uuid",
        "/buyList/joe?cursor=" + String(repeating: "A", count: 257), "/buyList/joe?cursor=",
    ])
    func badInputIs400(uri: String) async throws {
        try await withRouter { _, client in
            try await client.execute(uri: uri, method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains(#""status":"Error""#))
            }
        }
    }

    @Test func aPurchaseIsItsOwnReceiptOnceStored() async throws {
        try await withRouter { store, client in
            let purchase = try Self.stored(user: "receipt", count: 1)[0]
            try await client.execute(uri: "/purchases/\(purchase.id)", method: .get) { response in
                #expect(response.status == .notFound)
            }
            _ = try await store.insert([purchase])
            try await client.execute(uri: "/purchases/\(purchase.id.uppercased())", method: .get) { response in
                #expect(response.status == .ok)
                let object = try #require(
                    JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                let item = try #require(object["purchase"] as? [String: Any])
                #expect(item["purchaseId"] as? String == purchase.id)
                #expect(item["price"] as? String == "0.01")
                #expect(object["offset"] as? Int == 0)
            }
        }
    }

    /// `/readyz` gates the reads and nothing else: Kubernetes takes a pod out of the Service when
    /// it fails, so an ingest problem there would answer 502 to every list while MongoDB still
    /// serves reads. The ingest's state is `/readyz/ingest` and `cmapi_ingest_ready`.
    @Test func readinessIsAboutReadsAndTheIngestIsReportedApart() async throws {
        let store = InMemoryPurchaseStore()
        let status = IngestStatus()
        let missing = Mutex(false)
        let topics = TopicWatch(topics: ["purchases"], service: "cm-api", logger: quietLogger) {
            topic throws(KafkaError) in
            if missing.withLock({ $0 }) { throw .unknownTopic(topic) }
            return KafkaTopicMetadata(name: topic, partitionCount: 6)
        }
        let app = Application(router: buildRouter(store: store, status: status, topics: topics))
        try await app.test(.router) { client in
            func expect(reads: HTTPResponse.Status, ingest: String?) async throws {
                try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == reads) }
                try await client.execute(uri: "/readyz/ingest", method: .get) { response in
                    #expect(response.status == (ingest == nil ? .ok : .serviceUnavailable))
                    if let ingest { #expect(String(buffer: response.body).contains(ingest)) }
                }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(String(buffer: response.body).contains("cmapi_ingest_ready \(ingest == nil ? 1 : 0)"))
                }
            }
            try await expect(reads: .ok, ingest: "the Kafka consumer is not running")
            status.setRunning(true)
            try await expect(reads: .ok, ingest: nil)
            status.setWriteFailure("write concern timed out")
            try await expect(reads: .ok, ingest: "MongoDB unavailable: write concern timed out")
            status.setWriteFailure("not authorized on shop to execute command insert", permanent: true)
            try await expect(
                reads: .ok,
                ingest: "MongoDB refuses writes and retrying will not help until the cause is fixed: not authorized")
            status.setWriteFailure(nil)
            status.setDeadLetterFailure("Local: Broker transport failure")
            try await expect(reads: .ok, ingest: "the dead-letter topic refuses records")
            status.setDeadLetterFailure(nil)
            missing.withLock { $0 = true }
            await topics.check()
            try await expect(reads: .ok, ingest: "the Kafka topic purchases does not exist")
            missing.withLock { $0 = false }
            await topics.check()
            try await expect(reads: .ok, ingest: nil)
            store.setUnavailable("MongoDB unreachable: no primary")
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("MongoDB unreachable: no primary"))
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect(String(buffer: $0.body) == "Success") }
        }
    }

    /// A Kafka client broken for good fails liveness (so the process is replaced) and readiness,
    /// both saying why; an outage of a dependency never fails liveness.
    @Test func livenessFailsOnlyWhenTheProcessIsBrokenForGood() async throws {
        let store = InMemoryPurchaseStore()
        store.setUnavailable("MongoDB unreachable: no primary")
        let status = IngestStatus()
        let broken = Mutex<String?>(nil)
        let app = Application(
            router: buildRouter(store: store, status: status, failure: { broken.withLock { $0 } }))
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            broken.withLock { $0 = "Kafka consumer: fenced" }
            for path in ["/healthz", "/readyz"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .serviceUnavailable, "\(path)")
                    #expect(String(buffer: response.body).contains("Kafka consumer: fenced"), "\(path)")
                }
            }
        }
    }

    @Test func aFailingStoreIs503WithTheContractError() async throws {
        try await withRouter { store, client in
            store.setUnavailable("down")
            for uri in ["/buyList/joe", "/purchases/\(UUID())"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(String(buffer: response.body).contains(#""status":"Error""#))
                }
            }
        }
    }
}
