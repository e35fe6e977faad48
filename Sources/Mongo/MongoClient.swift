internal import CMongoC
internal import NIOPosix

/// The one owner of a libmongoc connection pool, built from a MongoDB connection string.
///
/// Every libmongoc call blocks on the network, so each runs on this client's own threads, as
/// many as the pool has connections: a waiting operation can always get a connection, and
/// nothing blocks a NIO event loop or the Swift cooperative pool.
public final class MongoClient: Sendable {
    private let pool: PoolHandle
    private let threads: NIOThreadPool
    /// The number of connections (and threads): the URI's `maxPoolSize`, or 16 when unset.
    public let connections: Int

    /// - Parameter uri: a `mongodb://` or `mongodb+srv://` URI; every option libmongoc knows
    ///   applies (credentials, `replicaSet`, `tls`, `w`, `serverSelectionTimeoutMS`, ...).
    /// - Throws: ``MongoError/Kind/invalidArgument`` for a URI libmongoc rejects.
    public init(uri: String, appName: String = "scalable-shop") throws(MongoError) {
        MongoLibrary.initialize()
        var error = bson_error_t()
        guard let parsed = mongoc_uri_new_with_error(uri, &error) else {
            throw MongoError(kind: .invalidArgument, message: "invalid MongoDB URI: \(MongoError(error).message)")
        }
        defer { mongoc_uri_destroy(parsed) }
        let size = Int(mongoc_uri_get_option_as_int32(parsed, MONGOC_URI_MAXPOOLSIZE, 16))
        guard let pool = mongoc_client_pool_new_with_error(parsed, &error) else {
            throw MongoError(
                kind: .invalidArgument, message: "cannot create a MongoDB pool: \(MongoError(error).message)")
        }
        mongoc_client_pool_set_error_api(pool, Int32(MONGOC_ERROR_API_VERSION_2))
        mongoc_client_pool_max_size(pool, UInt32(size))
        _ = mongoc_client_pool_set_appname(pool, appName)
        self.pool = PoolHandle(pool)
        self.connections = size
        self.threads = NIOThreadPool(numberOfThreads: size)
        threads.start()
    }

    deinit {
        threads.shutdownGracefully { _ in }
    }

    /// Stops the client's threads; operations after it throw ``MongoError/Kind/shutdown``.
    public func shutdown() async {
        try? await threads.shutdownGracefully()
    }

    /// Checks that a server answers (readiness).
    public func ping() async throws(MongoError) {
        _ = try await command(["ping": .int32(1)], database: "admin")
    }

    /// Runs a database command and returns its reply.
    public func command(_ command: BSONDocument, database: String) async throws(MongoError) -> BSONDocument {
        try await withClient { client throws(MongoError) in
            let commandBSON = try OwnedBSON(command)
            let reply = OwnedBSON.reply()
            var error = bson_error_t()
            guard mongoc_client_command_simple(client, database, commandBSON.pointer, nil, reply.pointer, &error) else {
                throw MongoError(error, reply: reply.pointer)
            }
            return reply.document
        }
    }

    public func collection(_ name: String, database: String) -> MongoCollection {
        MongoCollection(client: self, database: database, name: name)
    }

    /// Runs `body` on one of the client's threads with a pooled connection.
    func withClient<T: Sendable>(
        _ body: @escaping @Sendable (OpaquePointer) throws(MongoError) -> T
    ) async throws(MongoError) -> T {
        let pool = self.pool
        do {
            return try await threads.runIfActive { () throws -> T in
                // Never waits forever: there are as many threads as connections.
                let client = mongoc_client_pool_pop(pool.pointer)!
                defer { mongoc_client_pool_push(pool.pointer, client) }
                return try body(client)
            }
        } catch let error as MongoError {
            throw error
        } catch {
            throw MongoError(kind: .shutdown, message: "the MongoDB client is shut down")
        }
    }
}

/// `mongoc_client_pool_t` is documented thread-safe: pop and push from any thread.
final class PoolHandle: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        mongoc_client_pool_destroy(pointer)
    }
}
