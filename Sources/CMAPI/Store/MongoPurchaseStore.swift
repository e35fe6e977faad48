import Foundation
import Logging
import Mongo
import PurchaseDomain
import PurchaseWire
import ShopService
import Synchronization
import Tracing

/// The purchases in a MongoDB collection (`docs/CONTRACT.md`, "MongoDB"): `_id` is the
/// purchaseId, so a redelivered event is a duplicate-key no-op; price is an exact Decimal128;
/// both instants are BSON dates; the Kafka partition and offset it came from are kept.
struct MongoPurchaseStore: PurchaseStore {
    /// The collection the ingest writes through.
    let collection: MongoCollection
    /// The same collection through a client of its own for the reads, so that a flood of reads
    /// never holds the ingest's writes and a slow write never holds a read (cm-api gives each
    /// its own pool; tests may pass one client for both).
    let reads: MongoCollection
    /// How long a read may take, waiting for a connection included: a read that would answer
    /// later than this fails instead (its caller, cm-server, gives up at CM_API_TIMEOUT_MS).
    let readTimeout: Duration?
    let ping: MongoPing
    let logger: Logger

    /// MongoDB may still be starting when cm-api starts: creating the indexes is retried this long,
    /// every `indexRetryInterval`, before cm-api gives up and exits.
    static let indexRetryDeadline: Duration = .seconds(60)
    static let indexRetryInterval: Duration = .seconds(2)

    /// The indexes the contract requires: the first serves the newest-first list of a user.
    static let indexes: [MongoCollection.Index] = [
        .init(
            keys: ["username": .int32(1), "timestamp": .int32(-1), "_id": .int32(-1)], name: "username_timestamp_id"),
        .init(keys: ["userid": .int32(1), "timestamp": .int32(-1)], name: "userid_timestamp"),
    ]

    /// - Parameters:
    ///   - readinessWait: how long readiness waits for MongoDB's answer to a ping (under the
    ///     probe's own timeout).
    init(
        collection: MongoCollection, reads: MongoCollection? = nil, readTimeout: Duration? = nil,
        readinessWait: Duration = MongoPing.defaultWait, logger: Logger
    ) {
        self.collection = collection
        self.reads = reads ?? collection
        self.readTimeout = readTimeout
        // Readiness is about the reads: it asks through their client.
        self.ping = MongoPing(client: self.reads.client, wait: readinessWait)
        self.logger = logger
    }

    func prepare() async throws {
        let deadline = ContinuousClock.now.advanced(by: Self.indexRetryDeadline)
        while true {
            let failure: MongoError
            do {
                try await collection.createIndexes(Self.indexes)
                return
            } catch {
                failure = error
            }
            guard failure.isTransient, ContinuousClock.now < deadline else { throw failure }
            logger.warning("MongoDB not ready for the indexes; retrying", metadata: ["error": "\(failure)"])
            try await Task.sleep(for: Self.indexRetryInterval)
        }
    }

    func insert(_ purchases: [StoredPurchase]) async throws(PurchaseWriteFailure) -> PurchaseInsertResult {
        try await Self.traced("insert", collection, batchSize: purchases.count) { () throws(PurchaseWriteFailure) in
            try await insertUntraced(purchases)
        }
    }

    /// A CLIENT span `<operation> <collection>` for one MongoDB call (the database conventions:
    /// `db.system.name`, `db.operation.name`, `db.collection.name`, `db.namespace`,
    /// `db.operation.batch.size` for a bulk write).
    static func traced<T, E: Error>(
        _ operation: String, _ collection: MongoCollection, batchSize: Int? = nil, _ body: () async throws(E) -> T
    ) async throws(E) -> T {
        try await ShopTracing.withSpan("\(operation) \(collection.name)", ofKind: .client, errorType: errorType) {
            span throws(E) in
            span?.updateAttributes { attributes in
                attributes["db.system.name"] = "mongodb"
                attributes["db.operation.name"] = operation
                attributes["db.collection.name"] = collection.name
                attributes["db.namespace"] = collection.database
                attributes["db.operation.batch.size"] = batchSize
            }
            return try await body()
        }
    }

    /// A MongoDB error's kind, or the ingest's class of a failed write.
    static func errorType(_ error: some Error) -> String {
        switch error {
        case let error as MongoError: "\(error.kind)"
        case let error as PurchaseWriteFailure: error.errorType
        default: "\(type(of: error))"
        }
    }

    private func insertUntraced(_ purchases: [StoredPurchase]) async throws(PurchaseWriteFailure)
        -> PurchaseInsertResult
    {
        let written: MongoCollection.InsertResult
        var refused: [RefusedPurchase]?
        do {
            // Durable before the offsets move: a write only in memory (w:1 without the journal)
            // would be lost with the server's process after Kafka was told it was stored.
            written = try await collection.insert(purchases.map(\.document), writeConcern: .majorityJournaled())
        } catch {
            guard error.kind == .writeFailed, let partly = error.written else { throw Self.classify(error) }
            written = partly
            refused = error.failedDocuments.map {
                RefusedPurchase(index: $0.index, code: Int($0.code), reason: $0.reason)
            }
        }
        let result = PurchaseInsertResult(
            inserted: written.inserted, alreadyStored: written.alreadyStored,
            conflicts: try await conflicts(among: written.alreadyStoredIndices, of: purchases))
        if let refused { throw .refused(refused, written: result) }
        return result
    }

    /// The purchases of `purchases` at `indices` (found already stored) whose stored purchase is
    /// another request under the same `Idempotency-Key`: a key reused for another purchase while
    /// the first was still on its way (cm-server refuses the reuse once the first is stored).
    private func conflicts(among indices: [Int], of purchases: [StoredPurchase]) async throws(PurchaseWriteFailure)
        -> [IdempotencyConflict]
    {
        let keyed = indices.filter { purchases[$0].event.idempotencyFingerprint != nil }
        guard !keyed.isEmpty else { return [] }
        let stored: [BSONDocument]
        do {
            stored = try await collection.find([
                "_id": .document(["$in": .array(keyed.map { .string(purchases[$0].id) })])
            ])
        } catch {
            throw Self.classify(error)
        }
        var byID: [String: BSONDocument] = [:]
        for document in stored { if case .string(let id)? = document["_id"] { byID[id] = document } }
        return keyed.compactMap { index in
            let incoming = purchases[index]
            guard let fingerprint = incoming.event.idempotencyFingerprint, let document = byID[incoming.id] else {
                return nil
            }
            guard let existing = try? StoredPurchase(document: document) else {
                return IdempotencyConflict(
                    index: index, reason: "the document stored under its purchaseId is not a readable purchase")
            }
            return IdempotencyConflict(existing: existing, incoming: incoming, index: index, fingerprint: fingerprint)
        }
    }

    /// MongoDB's errors in the ingest's classes: errors a retry can fix (MongoDB's retryable list,
    /// the network, server selection), and all the others. (Refusals of single documents are
    /// read where the write's result is.)
    static func classify(_ error: MongoError) -> PurchaseWriteFailure {
        let reason = "\(error.message) (\(error.kind), code \(error.code))"
        return error.isTransient || error.kind == .shutdown ? .transient(reason) : .permanent(reason)
    }

    /// Keyset pagination: every page is one range scan of the `username_timestamp_id` index.
    func purchases(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> [StoredDocument]
    {
        let filter = Self.listFilter(username: username, userid: userid, after: resumePoint)
        let documents = try await Self.traced("find", reads) { () throws(MongoError) in
            try await reads.find(filter, sort: Self.listSort, limit: limit, maxTime: readTimeout)
        }
        return documents.map { document in
            do throws(InvalidStoredPurchase) {
                return .purchase(try StoredPurchase(document: document))
            } catch {
                return .unreadable(UnreadableDocument(document, error))
            }
        }
    }

    /// The same range scan with only the listed fields projected, each document read in place
    /// (``ListedDocument/init(_:)-(BSONElements)``).
    func listed(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> [ListedDocument]
    {
        let filter = Self.listFilter(username: username, userid: userid, after: resumePoint)
        return try await Self.traced("find", reads) { () throws(MongoError) in
            try await reads.find(
                filter, sort: Self.listSort, projection: Self.listedFields, limit: limit, maxTime: readTimeout,
                reading: ListedDocument.init)
        }
    }

    private static let listedFields: BSONDocument = [
        "_id": .int32(1), "username": .int32(1), "userid": .int32(1), "price": .int32(1), "timestamp": .int32(1),
    ]

    /// The same range scan as ``purchases(username:userid:limit:after:)`` returning only `_id`
    /// and `timestamp`: covered by the `username_timestamp_id` index (no document is read) when
    /// `userid` is `nil`.
    func pageTag(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> PageTag
    {
        let filter = Self.listFilter(username: username, userid: userid, after: resumePoint)
        let keys = try await Self.traced("find", reads) { () throws(MongoError) in
            try await reads.find(
                filter, sort: Self.listSort, projection: ["_id": .int32(1), "timestamp": .int32(1)], limit: limit,
                maxTime: readTimeout)
        }
        return PageTag(keys: keys.lazy.map(PageTag.Key.init(keys:)))
    }

    private static let listSort: BSONDocument = ["timestamp": .int32(-1), "_id": .int32(-1)]

    private static func listFilter(username: String, userid: String?, after resumePoint: PurchasePageResumePoint?)
        -> BSONDocument
    {
        var filter: BSONDocument = ["username": .string(username)]
        if let userid { filter.elements.append(("userid", .string(userid))) }
        if let resumePoint {
            let time = BSONValue.date(resumePoint.timestamp.millisecondsSinceEpoch)
            filter.elements.append(
                (
                    "$or",
                    .array([
                        .document(["timestamp": .document(["$lt": time])]),
                        .document(["timestamp": time, "_id": .document(["$lt": .string(resumePoint.purchaseId)])]),
                    ])
                )
            )
        }
        return filter
    }

    func purchase(id: UUID) async throws -> StoredPurchase? {
        let found = try await Self.traced("find", reads) { () throws(MongoError) in
            try await reads.find(id: .string(id.lowercasedString), maxTime: readTimeout)
        }
        guard let document = found else {
            return nil
        }
        do throws(InvalidStoredPurchase) {
            return try StoredPurchase(document: document)
        } catch {
            throw UnreadableDocument(document, error)
        }
    }

    func unavailableReason() async -> String? {
        await ping.failure().map { "MongoDB unreachable: \($0)" }
    }

    func latestUnavailableReason() async -> String? {
        await ping.latestFailure().map { "MongoDB unreachable: \($0)" }
    }
}

extension StoredPurchase {
    /// The contract's document.
    var document: BSONDocument {
        var document: BSONDocument = [
            "_id": .string(id),
            "username": .string(event.purchase.username),
            "userid": .string(event.purchase.userid),
            "price": .decimal128(event.purchase.price.description),
            "timestamp": .date(event.purchase.timestamp.millisecondsSinceEpoch),
            "receivedAt": .date(event.receivedAt.millisecondsSinceEpoch),
            "partition": .int32(partition),
            "offset": .int64(offset),
        ]
        if let fingerprint = event.idempotencyFingerprint {
            document.elements.append(("idempotencyFingerprint", .string(fingerprint.text)))
        }
        return document
    }

    /// Decodes a stored document exactly, with the same rules as a request.
    /// - Throws: ``InvalidStoredPurchase`` naming the field that is missing or wrong.
    init(document: BSONDocument) throws(InvalidStoredPurchase) {
        func field(_ name: String) throws(InvalidStoredPurchase) -> BSONValue {
            guard let value = document[name] else { throw Self.invalid(name, "is missing") }
            return value
        }
        guard case .string(let id) = try field("_id"), let purchaseId = UUID(uuidString: id) else {
            throw Self.invalid("_id", "is not a purchase id")
        }
        guard case .string(let username) = try field("username") else {
            throw Self.invalid("username", "is not a string")
        }
        guard case .string(let userid) = try field("userid") else { throw Self.invalid("userid", "is not a string") }
        guard case .decimal128(let priceText) = try field("price"), let price = try? Price(exactDecimal: priceText)
        else { throw Self.invalid("price", "is not a Decimal128 amount with at most 2 fraction digits") }
        guard case .date(let timestamp) = try field("timestamp") else {
            throw Self.invalid("timestamp", "is not a date")
        }
        guard case .date(let receivedAt) = try field("receivedAt") else {
            throw Self.invalid("receivedAt", "is not a date")
        }
        guard case .int32(let partition) = try field("partition") else {
            throw Self.invalid("partition", "is not an int32")
        }
        guard let offset = try field("offset").integer else { throw Self.invalid("offset", "is not an integer") }
        var fingerprint: IdempotencyFingerprint?
        if let value = document["idempotencyFingerprint"] {
            guard case .string(let text) = value, let valid = IdempotencyFingerprint(text: text) else {
                throw Self.invalid("idempotencyFingerprint", "is not 64 lowercase hex digits")
            }
            fingerprint = valid
        }
        let purchase: Purchase
        do {
            purchase = try Purchase(
                username: username,
                userid: userid,
                price: price,
                timestamp: Timestamp(millisecondsSinceEpoch: timestamp)
            )
        } catch {
            // The username or userid broke a rule; the description starts with the field's name.
            throw InvalidStoredPurchase(description: "stored purchase: \(error.description)")
        }
        self.init(
            event: PurchaseEvent(
                purchaseId: purchaseId,
                purchase: purchase,
                receivedAt: Timestamp(millisecondsSinceEpoch: receivedAt),
                idempotencyFingerprint: fingerprint
            ),
            partition: partition,
            offset: Int64(offset)
        )
    }

    private static func invalid(_ field: String, _ reason: String) -> InvalidStoredPurchase {
        InvalidStoredPurchase(description: "stored purchase: \(field) \(reason)")
    }
}

/// A document in the purchases collection that is not a purchase of the contract: what is
/// wrong with it, starting with the field.
struct InvalidStoredPurchase: Error, CustomStringConvertible {
    var description: String
}

extension UnreadableDocument {
    /// `document`, which `error` says is not a purchase: its `_id` as text, and its place in the
    /// list when its `_id` is a string and its `timestamp` a date (the list's sort keys).
    init(_ document: BSONDocument, _ error: InvalidStoredPurchase) {
        let id: String
        switch document["_id"] {
        case .string(let text)?: id = text
        case let other?: id = "\(other)"
        case nil: id = "(no _id)"
        }
        var resumePoint: PurchasePageResumePoint?
        if case .string(let text)? = document["_id"], case .date(let milliseconds)? = document["timestamp"] {
            resumePoint = PurchasePageResumePoint(
                timestamp: Timestamp(millisecondsSinceEpoch: milliseconds), purchaseId: text)
        }
        self.init(id: id, reason: error.description, resumePoint: resumePoint)
    }
}

/// Asks MongoDB whether it answers, one ping at a time: a readiness probe every few seconds
/// must not pile up pings (each holds a pool thread until the server selection timeout, or the
/// socket timeout when the server accepted the connection and went silent).
actor MongoPing {
    /// How long readiness waits for MongoDB's answer. The chart's readiness probe must wait
    /// longer (its timeoutSeconds; a chart test holds the two together).
    static let defaultWait: Duration = .seconds(2)

    let client: MongoClient
    /// How long readiness waits for the answer.
    let wait: Duration
    private var inFlight: Ping?
    /// The answer of the latest ping that finished: `nil` before any, `.some(nil)` when it answered.
    private var latest: String??

    /// One ping, and whether it has finished: a finished one is never handed out again, even
    /// before the actor has heard of its end (which waits for a free thread of the pool), or a
    /// readiness probe could get a success from before MongoDB stopped answering.
    private final class Ping: Sendable {
        final class Done: Sendable {
            let flag = Atomic<Bool>(false)
        }
        let task: Task<String?, Never>
        let done = Done()

        init(_ client: MongoClient) {
            let done = self.done
            task = Task {
                defer { done.flag.store(true, ordering: .releasing) }
                do {
                    try await client.ping()
                    return String?.none
                } catch {
                    return (error as? MongoError)?.message ?? "\(error)"
                }
            }
        }
    }

    init(client: MongoClient, wait: Duration = MongoPing.defaultWait) {
        self.client = client
        self.wait = wait
    }

    /// `nil` when MongoDB answered a ping within `wait`, else why not. Returns within `wait`
    /// whatever the server does; the ping itself may go on, and the next call waits for it.
    func failure() async -> String? {
        await Self.answer(of: ping(), within: wait)
    }

    /// The latest finished ping's answer, without waiting; starts a ping when none is running, so
    /// the next call knows more. `nil` also before any ping finished.
    func latestFailure() -> String? {
        _ = ping()
        return latest ?? nil
    }

    private func ping() -> Task<String?, Never> {
        if let inFlight, !inFlight.done.flag.load(ordering: .acquiring) { return inFlight.task }
        let ping = Ping(client)
        inFlight = ping
        Task {
            let answer = await ping.task.value
            self.finished(ping, answer)
        }
        return ping.task
    }

    private func finished(_ ping: Ping, _ answer: String?) {
        latest = .some(answer)
        if inFlight === ping { inFlight = nil }
    }

    /// The task's answer, or a time-out after `wait`: whichever comes first. (A task group would
    /// wait for the ping even after the time-out: awaiting another task's value ignores
    /// cancellation.)
    private static func answer(of task: Task<String?, Never>, within wait: Duration) async -> String? {
        await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            let answered = Atomic<Bool>(false)
            let first = { @Sendable (answer: String?) in
                if !answered.exchange(true, ordering: .acquiringAndReleasing) { continuation.resume(returning: answer) }
            }
            Task { first(await task.value) }
            Task {
                try? await Task.sleep(for: wait)
                first("no answer to a ping within \(wait)")
            }
        }
    }
}
