internal import CMongoC

/// A collection of a ``MongoClient``'s deployment. Cheap to create; holds no connection.
public struct MongoCollection: Sendable {
    public let client: MongoClient
    public let database: String
    public let name: String

    /// An index to create: its key pattern, name, and whether it is unique.
    public struct Index: Hashable, Sendable {
        public var keys: BSONDocument
        public var name: String
        public var unique: Bool

        public init(keys: BSONDocument, name: String, unique: Bool = false) {
            self.keys = keys
            self.name = name
            self.unique = unique
        }
    }

    /// What an insert did: how many documents were new, and which were stored already (their
    /// `_id` existed, so the write was a no-op for them).
    public struct InsertResult: Hashable, Sendable {
        public var inserted: Int
        /// The positions, in the documents given, of those whose `_id` was already stored.
        public var alreadyStoredIndices: [Int]
        public var alreadyStored: Int { alreadyStoredIndices.count }

        public init(inserted: Int, alreadyStoredIndices: [Int]) {
            self.inserted = inserted
            self.alreadyStoredIndices = alreadyStoredIndices
        }
    }

    /// How durable a write must be before the server acknowledges it.
    public struct WriteConcern: Hashable, Sendable {
        let document: BSONDocument?

        /// What the connection string or the deployment sets (MongoDB's own default: `w:1`
        /// before 5.0, `w:"majority"` on replica sets since).
        public static let deploymentDefault = WriteConcern(document: nil)

        /// Acknowledged once a majority of the replica set's members have the write in their
        /// journals, so no failover or crash can take it back; a write concern error after
        /// `timeout`. On a single server: once it is in that server's journal.
        public static func majorityJournaled(timeout: Duration = .seconds(10)) -> WriteConcern {
            WriteConcern(document: [
                "w": .string("majority"), "j": .bool(true),
                "wtimeout": .int64(
                    timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000),
            ])
        }
    }

    /// Creates the indexes; creating an existing identical index is a no-op, so this is safe
    /// at every start-up.
    public func createIndexes(_ indexes: [Index]) async throws(MongoError) {
        let specifications: [BSONValue] = indexes.map { index in
            var specification: BSONDocument = ["key": .document(index.keys), "name": .string(index.name)]
            if index.unique { specification.elements.append(("unique", .bool(true))) }
            return .document(specification)
        }
        _ = try await client.command(
            ["createIndexes": .string(name), "indexes": .array(specifications)],
            database: database
        )
    }

    /// How many documents match `filter` (the `count` command).
    public func count(_ filter: BSONDocument = [:]) async throws(MongoError) -> Int {
        let reply = try await client.command(["count": .string(name), "query": .document(filter)], database: database)
        switch reply["n"] {
        case .int32(let n)?: return Int(n)
        case .int64(let n)?: return Int(n)
        case .double(let n)?: return Int(n)
        default: throw MongoError(kind: .server, message: "count answered without n")
        }
    }

    /// The collection's indexes, as the server lists them.
    public func listIndexes() async throws(MongoError) -> [BSONDocument] {
        let reply = try await client.command(["listIndexes": .string(name)], database: database)
        guard case .document(let cursor)? = reply["cursor"], case .array(let batch)? = cursor["firstBatch"] else {
            return []
        }
        return batch.compactMap { if case .document(let index) = $0 { index } else { nil } }
    }

    /// Inserts the documents in one unordered bulk write (one round trip per 100,000 documents
    /// or 48 MB). A duplicate `_id` (E11000) counts as already stored, not as an error.
    /// - Throws: ``MongoError/Kind/writeFailed`` with the refused documents for any other
    ///   write error (the rest were written, durably as `writeConcern` asks, and counted in
    ///   ``MongoError/written``); any other error when the write as a whole failed or its write
    ///   concern was not met, in which case retrying all the documents is safe.
    public func insert(_ documents: [BSONDocument], writeConcern: WriteConcern = .deploymentDefault)
        async throws(MongoError) -> InsertResult
    {
        guard !documents.isEmpty else { return InsertResult(inserted: 0, alreadyStoredIndices: []) }
        let (database, name) = (self.database, self.name)
        return try await client.withClient { client throws(MongoError) in
            let encoded = try documents.map { document throws(MongoError) in try OwnedBSON(document) }
            let collection = mongoc_client_get_collection(client, database, name)
            defer { mongoc_collection_destroy(collection) }
            var optionDocument: BSONDocument = ["ordered": .bool(false)]
            if let concern = writeConcern.document {
                optionDocument.elements.append(("writeConcern", .document(concern)))
            }
            let options = try OwnedBSON(optionDocument)
            guard let bulk = mongoc_collection_create_bulk_operation_with_opts(collection, options.pointer) else {
                throw MongoError(kind: .invalidArgument, message: "cannot create a bulk write")
            }
            defer { mongoc_bulk_operation_destroy(bulk) }
            var error = bson_error_t()
            for document in encoded {
                guard mongoc_bulk_operation_insert_with_opts(bulk, document.pointer, nil, &error) else {
                    throw MongoError(error)
                }
            }
            let reply = OwnedBSON.reply()
            let succeeded = mongoc_bulk_operation_execute(bulk, reply.pointer, &error) != 0
            let summary = reply.document
            let inserted = summary["nInserted"].flatMap(\.integer) ?? 0
            var duplicates: [Int] = []
            var failed: [MongoError.FailedDocument] = []
            if case .array(let writeErrors)? = summary["writeErrors"] {
                for case .document(let writeError) in writeErrors {
                    let code = Int32(writeError["code"].flatMap(\.integer) ?? 0)
                    let index = writeError["index"].flatMap(\.integer).flatMap {
                        documents.indices.contains($0) ? $0 : nil
                    }
                    if code == 11000, Self.isDuplicateID(writeError), let index {
                        duplicates.append(index)
                    } else if let index {
                        let reason = if case .string(let text)? = writeError["errmsg"] { text } else { "write error" }
                        failed.append(.init(index: index, document: documents[index], code: code, reason: reason))
                    }
                }
            }
            // Written but perhaps not durable: the whole write is retried (those written are
            // then duplicates), so refusals are only reported once the rest is durable.
            if case .array(let errors)? = summary["writeConcernErrors"], case .document(let first)? = errors.first {
                let code = first["code"].flatMap(\.integer) ?? 64
                let reason = if case .string(let text)? = first["errmsg"] { text } else { "write concern failed" }
                throw MongoError(
                    kind: .timeout, message: "write concern not met: \(reason)", isTransient: true,
                    domain: UInt32(MONGOC_ERROR_WRITE_CONCERN.rawValue), code: UInt32(truncatingIfNeeded: code))
            }
            if !failed.isEmpty {
                throw MongoError(
                    kind: .writeFailed,
                    message: "\(failed.count) of \(documents.count) documents refused: \(failed[0].reason)",
                    domain: UInt32(MONGOC_ERROR_SERVER.rawValue),
                    code: UInt32(bitPattern: failed[0].code),
                    failedDocuments: failed,
                    written: InsertResult(inserted: inserted, alreadyStoredIndices: duplicates.sorted())
                )
            }
            if !succeeded && inserted + duplicates.count != documents.count {
                throw MongoError(error, reply: reply.pointer)
            }
            return InsertResult(inserted: inserted, alreadyStoredIndices: duplicates.sorted())
        }
    }

    /// Whether an E11000 write error is on `_id` (the document is already stored) rather than
    /// on another unique index (a real conflict). Servers name the index in `keyPattern`;
    /// older ones only in the message. A document that collides on `_id` and on another unique
    /// index may be reported on either, so collections written this way should keep `_id` their
    /// only unique index (the purchases collection does).
    private static func isDuplicateID(_ writeError: BSONDocument) -> Bool {
        if case .document(let keyPattern)? = writeError["keyPattern"] {
            return keyPattern.elements.map(\.key) == ["_id"]
        }
        if case .string(let message)? = writeError["errmsg"] { return message.contains("index: _id_ ") }
        return false
    }

    /// The documents matching `filter`, in `sort` order, at most `limit` of them.
    /// - Parameters:
    ///   - projection: the fields returned (MongoDB's projection document); all when `nil`. A
    ///     query whose filter, sort and projection are all in one index is answered from the
    ///     index alone (a covered query).
    ///   - maxTime: the server stops the query after this long (`maxTimeMS`) and it fails
    ///     with ``MongoError/Kind/timeout``.
    public func find(
        _ filter: BSONDocument, sort: BSONDocument? = nil, projection: BSONDocument? = nil, limit: Int? = nil,
        maxTime: Duration? = nil
    ) async throws(MongoError) -> [BSONDocument] {
        try await find(filter, sort: sort, projection: projection, limit: limit, maxTime: maxTime) { elements in
            elements.document
        }
    }

    /// ``find(_:sort:projection:limit:maxTime:)`` with each document read in place by `read`
    /// (``BSONElements``, valid only during the call) into what the caller keeps: no
    /// ``BSONDocument`` is made. `read` runs on the client's thread, once per document, in order.
    public func find<T: Sendable>(
        _ filter: BSONDocument, sort: BSONDocument? = nil, projection: BSONDocument? = nil, limit: Int? = nil,
        maxTime: Duration? = nil, reading read: @escaping @Sendable (borrowing BSONElements) -> T
    ) async throws(MongoError) -> [T] {
        var options = BSONDocument()
        if let sort { options.elements.append(("sort", .document(sort))) }
        if let projection { options.elements.append(("projection", .document(projection))) }
        if let limit { options.elements.append(("limit", .int64(Int64(limit)))) }
        if let maxTime {
            let milliseconds =
                maxTime.components.seconds * 1000 + maxTime.components.attoseconds / 1_000_000_000_000_000
            options.elements.append(("maxTimeMS", .int64(max(1, milliseconds))))
        }
        let (database, name, findOptions) = (self.database, self.name, options)
        return try await client.withClient { client throws(MongoError) in
            let filterBSON = try OwnedBSON(filter)
            let optionsBSON = try OwnedBSON(findOptions)
            let collection = mongoc_client_get_collection(client, database, name)
            defer { mongoc_collection_destroy(collection) }
            let cursor = mongoc_collection_find_with_opts(collection, filterBSON.pointer, optionsBSON.pointer, nil)
            defer { mongoc_cursor_destroy(cursor) }
            let iterator = shop_bson_iter_new()!
            defer { shop_bson_iter_free(iterator) }
            var results: [T] = []
            if let limit { results.reserveCapacity(limit) }
            var current: OpaquePointer?
            // Documents returned by the cursor belong to it and stay valid only until the next call.
            while mongoc_cursor_next(cursor, &current), let current {
                results.append(read(BSONElements(bson: current, iterator: iterator)))
            }
            var error = bson_error_t()
            var reply: OpaquePointer?
            if mongoc_cursor_error_document(cursor, &error, &reply) {
                throw MongoError(error, reply: reply)
            }
            return results
        }
    }

    /// The document with this `_id`, or `nil`.
    public func find(id: BSONValue, maxTime: Duration? = nil) async throws(MongoError) -> BSONDocument? {
        try await find(["_id": id], limit: 1, maxTime: maxTime).first
    }

    /// Drops the whole database this collection belongs to (tests and benchmarks).
    public func dropDatabase() async throws(MongoError) {
        _ = try await client.command(["dropDatabase": .int32(1)], database: database)
    }
}

extension BSONValue {
    /// The value as an `Int` when it is an integer (servers answer counts as int32 or int64).
    public var integer: Int? {
        switch self {
        case .int32(let value): Int(value)
        case .int64(let value): Int(value)
        case .double(let value) where value == value.rounded(): Int(exactly: value)
        default: nil
        }
    }
}
