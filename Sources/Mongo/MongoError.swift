internal import CMongoC

/// An error from MongoDB or libmongoc, saying whether trying again can help.
public struct MongoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case connection, serverSelection, notPrimary, timeout, authentication, invalidArgument
            case writeFailed, server, shutdown
        }
        private let backing: Backing

        /// The connection failed or was closed.
        public static let connection = Kind(backing: .connection)
        /// No suitable server answered within `serverSelectionTimeoutMS`.
        public static let serverSelection = Kind(backing: .serverSelection)
        /// The server is not (or no longer) the primary, or is shutting down.
        public static let notPrimary = Kind(backing: .notPrimary)
        /// The operation exceeded its time limit.
        public static let timeout = Kind(backing: .timeout)
        /// Authentication failed: fix the credentials.
        public static let authentication = Kind(backing: .authentication)
        /// The request was invalid (a bad URI, document, or option): fix the caller.
        public static let invalidArgument = Kind(backing: .invalidArgument)
        /// Some documents of a bulk write were refused for a reason other than a duplicate key.
        public static let writeFailed = Kind(backing: .writeFailed)
        /// Any other error the server reported.
        public static let server = Kind(backing: .server)
        /// The client is shut down.
        public static let shutdown = Kind(backing: .shutdown)

        public var description: String { backing.rawValue }
    }

    public let kind: Kind
    public let message: String
    /// Whether the same operation may succeed if tried again later (network, server selection,
    /// failover, time-outs). Writes of the shop are idempotent, so retrying them is safe.
    public let isTransient: Bool
    /// libmongoc's error domain and code (for a server error: the server's code).
    public let domain: UInt32
    public let code: UInt32
    /// For ``Kind/writeFailed``: the documents refused, with the server's reason for each.
    public let failedDocuments: [FailedDocument]
    /// For ``Kind/writeFailed``: what happened to the other documents, which were written with
    /// the write concern met (a write concern failure is reported as a transient error instead).
    public let written: MongoCollection.InsertResult?

    /// A document a bulk write refused.
    public struct FailedDocument: Hashable, Sendable {
        /// Its position in the documents given to the write.
        public let index: Int
        public let document: BSONDocument
        /// The server's error code (121: the collection's validator refused it).
        public let code: Int32
        public let reason: String
    }

    init(
        kind: Kind,
        message: String,
        isTransient: Bool = false,
        domain: UInt32 = 0,
        code: UInt32 = 0,
        failedDocuments: [FailedDocument] = [],
        written: MongoCollection.InsertResult? = nil
    ) {
        self.kind = kind
        self.message = message
        self.isTransient = isTransient
        self.domain = domain
        self.code = code
        self.failedDocuments = failedDocuments
        self.written = written
    }

    public var description: String {
        "MongoError.\(kind): \(message) [domain \(domain), code \(code)]\(isTransient ? " (transient)" : "")"
    }

    /// Server error codes after which a retry can succeed (MongoDB's retryable-error list).
    private static let transientServerCodes: Set<UInt32> = [
        6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436, 64, 50,
    ]
    private static let notPrimaryCodes: Set<UInt32> = [91, 189, 10107, 11600, 11602, 13435, 13436]

    /// Maps a libmongoc error (error API version 2), using the reply's labels when there is one.
    init(_ error: bson_error_t, reply: OpaquePointer? = nil) {
        let domain = error.domain
        let code = error.code
        let message = withUnsafeBytes(of: error.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let labelled = reply.map { mongoc_error_has_label($0, "RetryableWriteError") } ?? false
        let kind: Kind
        var transient = false
        switch Int(domain) {
        case Int(MONGOC_ERROR_STREAM.rawValue):
            kind = .connection
            transient = true
        case Int(MONGOC_ERROR_SERVER_SELECTION.rawValue):
            kind = .serverSelection
            transient = true
        case Int(MONGOC_ERROR_CLIENT.rawValue) where code == MONGOC_ERROR_CLIENT_AUTHENTICATE.rawValue,
            Int(MONGOC_ERROR_SASL.rawValue), Int(MONGOC_ERROR_SCRAM.rawValue):
            kind = .authentication
        case Int(MONGOC_ERROR_SERVER.rawValue), Int(MONGOC_ERROR_WRITE_CONCERN.rawValue):
            if code == 18 {
                kind = .authentication
            } else if Self.notPrimaryCodes.contains(code) {
                kind = .notPrimary
            } else if code == 50 || code == 64 || code == 89 {
                kind = .timeout
            } else {
                kind = .server
            }
            transient = Self.transientServerCodes.contains(code)
        case Int(MONGOC_ERROR_BSON.rawValue), Int(MONGOC_ERROR_COMMAND.rawValue), Int(MONGOC_ERROR_NAMESPACE.rawValue):
            kind = .invalidArgument
        default:
            kind = .server
        }
        self.init(kind: kind, message: message, isTransient: transient || labelled, domain: domain, code: code)
    }
}
