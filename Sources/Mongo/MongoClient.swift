internal import CMongoC
internal import NIOPosix
internal import Synchronization

/// The one owner of a libmongoc connection pool, built from a MongoDB connection string.
///
/// Every libmongoc call blocks on the network, so each runs on this client's own threads, as
/// many as the pool has connections: a waiting operation can always get a connection, and
/// nothing blocks a NIO event loop or the Swift cooperative pool.
///
/// No call waits without a bound: the socket and server-selection timeouts have defaults
/// (``Timeouts``) where the URI sets none, and ``Queue`` can bound how many operations wait for a
/// connection and for how long (an operation that would start late fails instead).
public final class MongoClient: Sendable {
    private let pool: PoolHandle
    private let threads: NIOThreadPool
    /// The number of connections (and threads): the URI's `maxPoolSize`, or `connections` when unset.
    public let connections: Int
    /// The socket timeout in effect: the URI's `socketTimeoutMS`, or ``Timeouts/socket``.
    public let socketTimeout: Duration
    /// The server selection timeout in effect: the URI's `serverSelectionTimeoutMS`, or
    /// ``Timeouts/serverSelection``.
    public let serverSelectionTimeout: Duration
    private let queue: Queue
    private let waiting = Atomic<Int>(0)
    private let running = Atomic<Int>(0)

    /// How long a call may take where the URI does not say (libmongoc's own defaults, 300 s for a
    /// socket and 30 s for server selection, would let one hung call outlast most callers).
    public struct Timeouts: Hashable, Sendable {
        /// `socketTimeoutMS`: the longest wait for a reply on an open connection.
        public var socket: Duration
        /// `serverSelectionTimeoutMS`: the longest wait for a suitable server.
        public var serverSelection: Duration

        public init(socket: Duration = .seconds(30), serverSelection: Duration = .seconds(10)) {
            self.socket = socket
            self.serverSelection = serverSelection
        }
    }

    /// How operations wait for a free connection: at most `maximumWaiting` submitted and not yet
    /// started at once (more fail at once), each at most `maximumWait` (one that would start later
    /// fails instead, its caller having given up or about to). `nil`: no bound.
    public struct Queue: Hashable, Sendable {
        public var maximumWaiting: Int?
        public var maximumWait: Duration?

        public init(maximumWaiting: Int? = nil, maximumWait: Duration? = nil) {
            self.maximumWaiting = maximumWaiting
            self.maximumWait = maximumWait
        }

        public static let unbounded = Queue()
    }

    /// - Parameters:
    ///   - uri: a `mongodb://` or `mongodb+srv://` URI; every option libmongoc knows applies
    ///     (credentials, `replicaSet`, `tls`, `w`, `serverSelectionTimeoutMS`, ...).
    ///   - connections: the pool's size when the URI sets no `maxPoolSize`.
    ///   - timeouts: the timeouts the URI does not set.
    ///   - queue: the bounds on operations waiting for a connection.
    /// - Throws: ``MongoError/Kind/invalidArgument`` for a URI libmongoc rejects.
    public init(
        uri: String, appName: String = "scalable-shop", connections: Int = 16, timeouts: Timeouts = Timeouts(),
        queue: Queue = .unbounded
    ) throws(MongoError) {
        MongoLibrary.initialize()
        let parsed = try Self.parse(uri, timeouts: timeouts)
        defer { mongoc_uri_destroy(parsed) }
        let size = Int(mongoc_uri_get_option_as_int32(parsed, MONGOC_URI_MAXPOOLSIZE, Int32(connections)))
        socketTimeout = .milliseconds(mongoc_uri_get_option_as_int32(parsed, MONGOC_URI_SOCKETTIMEOUTMS, 0))
        serverSelectionTimeout = .milliseconds(
            mongoc_uri_get_option_as_int32(parsed, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0))
        var error = bson_error_t()
        guard let pool = mongoc_client_pool_new_with_error(parsed, &error) else {
            throw MongoError(
                kind: .invalidArgument, message: "cannot create a MongoDB pool: \(MongoError(error).message)")
        }
        mongoc_client_pool_set_error_api(pool, Int32(MONGOC_ERROR_API_VERSION_2))
        mongoc_client_pool_max_size(pool, UInt32(size))
        _ = mongoc_client_pool_set_appname(pool, appName)
        self.pool = PoolHandle(pool)
        self.connections = size
        self.queue = queue
        self.threads = NIOThreadPool(numberOfThreads: size)
        threads.start()
    }

    /// The socket and server-selection timeouts a client of `uri` would use, without connecting:
    /// for checking a configuration before anything starts.
    public static func effectiveTimeouts(uri: String, defaults: Timeouts = Timeouts()) throws(MongoError) -> Timeouts {
        MongoLibrary.initialize()
        let parsed = try parse(uri, timeouts: defaults)
        defer { mongoc_uri_destroy(parsed) }
        return Timeouts(
            socket: .milliseconds(mongoc_uri_get_option_as_int32(parsed, MONGOC_URI_SOCKETTIMEOUTMS, 0)),
            serverSelection: .milliseconds(
                mongoc_uri_get_option_as_int32(parsed, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0)))
    }

    /// Parses `uri` and sets the timeouts it leaves unset. The caller destroys the result.
    private static func parse(_ uri: String, timeouts: Timeouts) throws(MongoError) -> OpaquePointer {
        var error = bson_error_t()
        guard let parsed = mongoc_uri_new_with_error(uri, &error) else {
            throw MongoError(kind: .invalidArgument, message: "invalid MongoDB URI: \(MongoError(error).message)")
        }
        for (option, value) in [
            (MONGOC_URI_SOCKETTIMEOUTMS, timeouts.socket),
            (MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeouts.serverSelection),
        ] where !mongoc_uri_has_option(parsed, option) {
            let milliseconds = value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000
            _ = mongoc_uri_set_option_as_int32(parsed, option, Int32(clamping: milliseconds))
        }
        return parsed
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

    /// Operations waiting for a connection now (queued behind the ones running).
    public var operationsWaiting: Int {
        waiting.load(ordering: .relaxed)
    }

    /// Operations holding a connection now.
    public var operationsRunning: Int {
        running.load(ordering: .relaxed)
    }

    /// Runs `body` on one of the client's threads with a pooled connection, within the queue's
    /// bounds.
    func withClient<T: Sendable>(
        _ body: @escaping @Sendable (OpaquePointer) throws(MongoError) -> T
    ) async throws(MongoError) -> T {
        let pool = self.pool
        let queue = self.queue
        let queued = waiting.wrappingAdd(1, ordering: .relaxed).newValue
        if let maximum = queue.maximumWaiting, queued > maximum {
            waiting.wrappingSubtract(1, ordering: .relaxed)
            throw MongoError(
                kind: .timeout,
                message: "\(maximum) operations already wait for one of the \(connections) MongoDB connections",
                isTransient: true)
        }
        let enqueued = ContinuousClock.now
        do {
            return try await threads.runIfActive { [self] () throws -> T in
                waiting.wrappingSubtract(1, ordering: .relaxed)
                if let wait = queue.maximumWait, ContinuousClock.now - enqueued > wait {
                    throw MongoError(
                        kind: .timeout,
                        message: "no MongoDB connection was free within \(wait): the operation would start too late",
                        isTransient: true)
                }
                // Never waits forever: there are as many threads as connections.
                let client = mongoc_client_pool_pop(pool.pointer)!
                running.wrappingAdd(1, ordering: .relaxed)
                defer {
                    running.wrappingSubtract(1, ordering: .relaxed)
                    mongoc_client_pool_push(pool.pointer, client)
                }
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
