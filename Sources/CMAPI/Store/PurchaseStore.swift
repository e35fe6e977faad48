import Foundation
import PurchaseDomain
import PurchaseWire
import Synchronization

/// Where cm-api keeps purchases: MongoDB in production (``MongoPurchaseStore``), memory in the
/// route tests (``InMemoryPurchaseStore``), so the routes and readiness are tested without a server.
protocol PurchaseStore: Sendable {
    /// Makes the store ready for use (MongoDB: the contract's indexes); safe at every start.
    func prepare() async throws

    /// Stores purchases durably; those already stored (same purchaseId) are counted, not
    /// written twice. When it throws ``PurchaseWriteFailure/refused(_:written:)`` the others are
    /// stored; after any other failure nothing of the batch may be taken as stored.
    func insert(_ purchases: [StoredPurchase]) async throws(PurchaseWriteFailure) -> PurchaseInsertResult

    /// One page of the purchases stored under `username` (and, when given, made by `userid`),
    /// newest first (timestamp, then purchaseId, descending), starting after `resumePoint`. Names
    /// match byte for byte.
    /// A document that is not a purchase of the contract (written by something else) is
    /// returned as ``StoredDocument/unreadable(_:)`` in its place, never thrown: one bad document
    /// must not take its whole page down.
    func purchases(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> [StoredDocument]

    /// ``purchases(username:userid:limit:after:)`` as a list shows them: the listed fields of each
    /// document, and the documents that cannot be listed.
    func listed(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> [ListedDocument]

    /// The tag of the page ``purchases(username:userid:limit:after:)`` would return now
    /// (``PageTag``), from the documents' keys only.
    func pageTag(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> PageTag

    /// The purchase with this id, or `nil` while it is not (yet) stored.
    /// - Throws: ``UnreadableDocument`` when the document stored under the id is not a purchase.
    func purchase(id: UUID) async throws -> StoredPurchase?

    /// `nil` when the store answers, else why not: what `GET /readyz` says.
    func unavailableReason() async -> String?

    /// What ``unavailableReason()`` last found, without waiting for the store (for `/metrics`,
    /// which must answer whatever the store does).
    func latestUnavailableReason() async -> String?
}

extension PurchaseStore {
    func listed(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> [ListedDocument]
    {
        try await purchases(username: username, userid: userid, limit: limit, after: resumePoint).map(
            ListedDocument.init)
    }
}

/// One document of a list read: a purchase, or one that cannot be read as one.
enum StoredDocument: Sendable, Hashable {
    case purchase(StoredPurchase)
    case unreadable(UnreadableDocument)

    var purchase: StoredPurchase? {
        if case .purchase(let purchase) = self { purchase } else { nil }
    }

    /// Where the list goes on after this document, when its `_id` and `timestamp` say so.
    var resumePoint: PurchasePageResumePoint? {
        switch self {
        case .purchase(let purchase): purchase.resumePoint
        case .unreadable(let document): document.resumePoint
        }
    }
}

/// A stored document that is not a purchase of the contract (say a price another writer stored
/// as a double): its `_id` as text, what is wrong with it, and its place in the list if it has one.
struct UnreadableDocument: Error, Sendable, Hashable, CustomStringConvertible {
    var id: String
    var reason: String
    var resumePoint: PurchasePageResumePoint?

    var description: String { "document \(id): \(reason)" }
}

/// What an insert did: how many purchases were new and how many were stored already, and which
/// of those were not the same request (``IdempotencyConflict``).
struct PurchaseInsertResult: Hashable, Sendable {
    var inserted: Int
    var alreadyStored: Int
    var conflicts: [IdempotencyConflict] = []
}

/// A purchase whose purchaseId (decided by its `Idempotency-Key`) is already stored for another
/// request: the key was reused for a different purchase while the first was on its way. It is
/// not stored; the ingest dead-letters it with `reason`.
struct IdempotencyConflict: Hashable, Sendable {
    /// Its position in the purchases given to the write.
    var index: Int
    var reason: String

    init(index: Int, reason: String) {
        self.index = index
        self.reason = reason
    }

    /// `nil` when `incoming` is the request `existing` was stored for (a redelivery or a retry).
    init?(existing: StoredPurchase, incoming: StoredPurchase, index: Int, fingerprint: IdempotencyFingerprint) {
        let same = IdempotencyFingerprint.isSameRequest(
            stored: (existing.event.idempotencyFingerprint, existing.event.purchase), as: incoming.event.purchase,
            fingerprint: fingerprint)
        guard !same else { return nil }
        self.init(
            index: index,
            reason:
                "the Idempotency-Key of purchase \(incoming.id) was used for another purchase, stored first "
                + "(price \(existing.event.purchase.price), timestamp \(existing.event.purchase.timestamp)); this one "
                + "(price \(incoming.event.purchase.price), timestamp \(incoming.event.purchase.timestamp)) is not stored"
        )
    }
}

/// Why a write failed, in the classes the ingest treats differently (docs/RELIABILITY.md).
enum PurchaseWriteFailure: Error, CustomStringConvertible {
    /// The store refused these purchases for good (a validator, a document it will not take);
    /// the others were stored durably (`written`). Retrying would refuse them again.
    case refused([RefusedPurchase], written: PurchaseInsertResult)
    /// May succeed when tried again soon: the network, no primary, a write-concern time-out.
    case transient(String)
    /// No retry will fix it until an operator does: authentication, authorization, a namespace
    /// that cannot exist, or any other error the store does not call transient.
    case permanent(String)

    var description: String {
        switch self {
        case .refused(let refused, _): "\(refused.count) purchases refused: \(refused[0].reason)"
        case .transient(let reason), .permanent(let reason): reason
        }
    }

    /// The span's `error.type`: the class.
    var errorType: String {
        switch self {
        case .refused: "refused"
        case .transient: "transient"
        case .permanent: "permanent"
        }
    }
}

/// A purchase the store refused: its position in the batch given to the write, and why.
struct RefusedPurchase: Hashable, Sendable {
    var index: Int
    /// The store's error code (MongoDB's: 121 is a validator's refusal).
    var code: Int
    var reason: String
}

/// A ``PurchaseStore`` in memory, with the same order and idempotency rules as MongoDB's. It can
/// be made unavailable, as a MongoDB outage would make the real one.
final class InMemoryPurchaseStore: PurchaseStore {
    /// What an unavailable store throws.
    struct Unavailable: Error, CustomStringConvertible {
        var description: String
    }

    private struct State {
        var purchases: [String: StoredPurchase] = [:]
        /// Documents another writer left that are not purchases, by username.
        var unreadable: [String: [UnreadableDocument]] = [:]
        var unavailable: String?
        var permanent = false
        var refuse: @Sendable (StoredPurchase) -> String? = { _ in nil }
    }
    private let state = Mutex(State())

    init(_ purchases: [StoredPurchase] = []) {
        state.withLock { state in
            for purchase in purchases { state.purchases[purchase.id] = purchase }
        }
    }

    /// Every operation fails with `reason` until it is set back to `nil`; writes fail as
    /// ``PurchaseWriteFailure/permanent(_:)`` when `permanent`, else as transient.
    func setUnavailable(_ reason: String?, permanent: Bool = false) {
        state.withLock { state in
            state.unavailable = reason
            state.permanent = permanent
        }
    }

    /// Refuses, for good, the purchases for which `reason` answers a reason (as a validator would).
    func refuse(when reason: @escaping @Sendable (StoredPurchase) -> String?) {
        state.withLock { $0.refuse = reason }
    }

    var count: Int { state.withLock { $0.purchases.count } }

    /// Stores a document under `username` that is not a purchase (as another writer could leave
    /// one in MongoDB); lists meet it at `document.resumePoint`.
    func addUnreadable(_ document: UnreadableDocument, username: String) {
        state.withLock { $0.unreadable[username, default: []].append(document) }
    }

    func prepare() async throws { try check() }

    func insert(_ purchases: [StoredPurchase]) async throws(PurchaseWriteFailure) -> PurchaseInsertResult {
        try state.withLock { state throws(PurchaseWriteFailure) in
            if let reason = state.unavailable {
                throw state.permanent ? .permanent(reason) : .transient(reason)
            }
            var result = PurchaseInsertResult(inserted: 0, alreadyStored: 0)
            var refused: [RefusedPurchase] = []
            for (index, purchase) in purchases.enumerated() {
                if let reason = state.refuse(purchase) {
                    refused.append(RefusedPurchase(index: index, code: 121, reason: reason))
                } else if let existing = state.purchases[purchase.id] {
                    result.alreadyStored += 1
                    if let fingerprint = purchase.event.idempotencyFingerprint,
                        let conflict = IdempotencyConflict(
                            existing: existing, incoming: purchase, index: index, fingerprint: fingerprint)
                    {
                        result.conflicts.append(conflict)
                    }
                } else {
                    state.purchases[purchase.id] = purchase
                    result.inserted += 1
                }
            }
            if !refused.isEmpty { throw .refused(refused, written: result) }
            return result
        }
    }

    func purchases(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> [StoredDocument]
    {
        try check()
        let (mine, unreadable) = state.withLock { state in
            let mine = state.purchases.values.filter { stored in
                let purchase = stored.event.purchase
                return purchase.username.hasSameBytes(as: username)
                    && userid.map { purchase.userid.hasSameBytes(as: $0) } ?? true
            }
            let unreadable = state.unreadable.filter { $0.key.hasSameBytes(as: username) }.values.joined()
            return (mine.map(StoredDocument.purchase), unreadable.map(StoredDocument.unreadable))
        }
        // As MongoDB's sort and resume filter: dates (resume points) newest first, then the rest.
        let ordered = (mine + unreadable).filter { document in
            guard let resumePoint else { return true }
            return document.resumePoint.map { $0 < resumePoint } ?? false
        }.sorted { lhs, rhs in
            switch (lhs.resumePoint, rhs.resumePoint) {
            case (let left?, let right?): left > right
            case (.some, nil): true
            default: false
            }
        }
        return Array(ordered.prefix(limit))
    }

    func pageTag(username: String, userid: String?, limit: Int, after resumePoint: PurchasePageResumePoint?)
        async throws -> PageTag
    {
        PageTag(documents: try await purchases(username: username, userid: userid, limit: limit, after: resumePoint))
    }

    func purchase(id: UUID) async throws -> StoredPurchase? {
        try check()
        let (purchase, unreadable) = state.withLock { state in
            (
                state.purchases[id.lowercasedString],
                state.unreadable.values.joined().first { $0.id == id.lowercasedString }
            )
        }
        if let unreadable { throw unreadable }
        return purchase
    }

    func unavailableReason() async -> String? { state.withLock { $0.unavailable } }

    func latestUnavailableReason() async -> String? { await unavailableReason() }

    private func check() throws(Unavailable) {
        if let reason = state.withLock({ $0.unavailable }) { throw Unavailable(description: reason) }
    }
}
