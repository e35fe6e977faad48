public import Events
public import Foundation

/// A purchase as cm-api stores it (`CONTRACT.md`, "MongoDB"): `_id` is the purchaseId, so a
/// redelivered event is a duplicate-key no-op; price is an exact Decimal128; both instants are
/// BSON dates; the Kafka partition and offset it came from are kept.
public struct StoredPurchase: Hashable, Sendable {
    public var event: PurchaseEvent
    public var partition: Int32
    public var offset: Int64

    public init(event: PurchaseEvent, partition: Int32, offset: Int64) {
        self.event = event
        self.partition = partition
        self.offset = offset
    }

    /// The purchase id as stored in `_id`: the lowercase UUID text.
    public var id: String { event.purchaseId.uuidString.lowercased() }

    public var document: BSONDocument {
        [
            "_id": .string(id),
            "username": .string(event.purchase.username),
            "userid": .string(event.purchase.userid),
            "price": .decimal128(event.purchase.price.description),
            "timestamp": .date(event.purchase.timestamp.millisecondsSinceEpoch),
            "receivedAt": .date(event.receivedAt.millisecondsSinceEpoch),
            "partition": .int32(partition),
            "offset": .int64(offset),
        ]
    }

    /// Decodes a stored document exactly, with the same rules as a request.
    /// - Throws: ``MongoError/Kind/invalidArgument`` naming the field that is missing or wrong.
    public init(document: BSONDocument) throws(MongoError) {
        func field(_ name: String) throws(MongoError) -> BSONValue {
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
        let purchase: Purchase
        do {
            purchase = try Purchase(
                username: username,
                userid: userid,
                price: price,
                timestamp: Timestamp(millisecondsSinceEpoch: timestamp)
            )
        } catch {
            throw Self.invalid("purchase", error.description)
        }
        self.init(
            event: PurchaseEvent(
                purchaseId: purchaseId,
                purchase: purchase,
                receivedAt: Timestamp(millisecondsSinceEpoch: receivedAt)
            ),
            partition: partition,
            offset: Int64(offset)
        )
    }

    private static func invalid(_ field: String, _ reason: String) -> MongoError {
        MongoError(kind: .invalidArgument, message: "stored purchase: \(field) \(reason)")
    }
}

/// Where the next page of a user's purchases starts: after this (timestamp, purchaseId).
public struct PurchasePageResumePoint: Hashable, Sendable {
    public var timestamp: Timestamp
    public var purchaseId: String

    public init(timestamp: Timestamp, purchaseId: String) {
        self.timestamp = timestamp
        self.purchaseId = purchaseId
    }
}

extension MongoCollection {
    /// The indexes `CONTRACT.md` requires: the first serves the newest-first list of a user.
    public static let purchaseIndexes: [Index] = [
        Index(
            keys: ["username": .int32(1), "timestamp": .int32(-1), "_id": .int32(-1)], name: "username_timestamp_id"),
        Index(keys: ["userid": .int32(1), "timestamp": .int32(-1)], name: "userid_timestamp"),
    ]

    /// Stores purchases; those already stored (same purchaseId) are counted, not written twice.
    public func insert(_ purchases: [StoredPurchase], writeConcern: WriteConcern = .deploymentDefault)
        async throws(MongoError) -> InsertResult
    {
        try await insert(purchases.map(\.document), writeConcern: writeConcern)
    }

    /// One page of a user's purchases, newest first (timestamp, then purchaseId, descending),
    /// using keyset pagination so every page costs one index range scan.
    public func purchases(
        username: String,
        limit: Int,
        after resumePoint: PurchasePageResumePoint? = nil
    ) async throws(MongoError) -> [StoredPurchase] {
        var filter: BSONDocument = ["username": .string(username)]
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
        let documents = try await find(filter, sort: ["timestamp": .int32(-1), "_id": .int32(-1)], limit: limit)
        return try documents.map { document throws(MongoError) in try StoredPurchase(document: document) }
    }

    /// The purchase with this id, or `nil` while it is not (yet) stored.
    public func purchase(id: UUID) async throws(MongoError) -> StoredPurchase? {
        guard let document = try await find(id: .string(id.uuidString.lowercased())) else { return nil }
        return try StoredPurchase(document: document)
    }
}
