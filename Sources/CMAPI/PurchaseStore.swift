import Events
import Foundation
import Synchronization

/// Where cm-api keeps purchases: MongoDB in production (``MongoPurchaseStore``), memory in the
/// route tests (``InMemoryPurchaseStore``), so the routes and readiness are tested without a server.
protocol PurchaseStore: Sendable {
    /// Makes the store ready for use (MongoDB: the contract's indexes); safe at every start.
    func prepare() async throws

    /// Stores purchases durably; those already stored (same purchaseId) are counted, not
    /// written twice. When it throws, nothing of the batch may be taken as stored.
    func insert(_ purchases: [StoredPurchase]) async throws -> PurchaseInsertResult

    /// One page of a user's purchases, newest first (timestamp, then purchaseId, descending),
    /// starting after `resumePoint`.
    func purchases(username: String, limit: Int, after resumePoint: PurchasePageResumePoint?) async throws
        -> [StoredPurchase]

    /// The purchase with this id, or `nil` while it is not (yet) stored.
    func purchase(id: UUID) async throws -> StoredPurchase?

    /// `nil` when the store answers, else why not: what `GET /readyz` says.
    func unavailableReason() async -> String?
}

/// What an insert did: how many purchases were new and how many were stored already.
struct PurchaseInsertResult: Hashable, Sendable {
    var inserted: Int
    var alreadyStored: Int
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
        var unavailable: String?
    }
    private let state = Mutex(State())

    init(_ purchases: [StoredPurchase] = []) {
        state.withLock { state in
            for purchase in purchases { state.purchases[purchase.id] = purchase }
        }
    }

    /// Every operation fails with `reason` until it is set back to `nil`.
    func setUnavailable(_ reason: String?) { state.withLock { $0.unavailable = reason } }

    var count: Int { state.withLock { $0.purchases.count } }

    func prepare() async throws { try check() }

    func insert(_ purchases: [StoredPurchase]) async throws -> PurchaseInsertResult {
        try state.withLock { state throws(Unavailable) in
            if let reason = state.unavailable { throw Unavailable(description: reason) }
            var result = PurchaseInsertResult(inserted: 0, alreadyStored: 0)
            for purchase in purchases {
                if state.purchases[purchase.id] == nil {
                    state.purchases[purchase.id] = purchase
                    result.inserted += 1
                } else {
                    result.alreadyStored += 1
                }
            }
            return result
        }
    }

    func purchases(username: String, limit: Int, after resumePoint: PurchasePageResumePoint?) async throws
        -> [StoredPurchase]
    {
        try check()
        let mine = state.withLock { state in
            state.purchases.values.filter { purchase in
                purchase.event.purchase.username == username && resumePoint.map { purchase.resumePoint < $0 } ?? true
            }
        }
        return Array(mine.sorted { $0.resumePoint > $1.resumePoint }.prefix(limit))
    }

    func purchase(id: UUID) async throws -> StoredPurchase? {
        try check()
        return state.withLock { $0.purchases[id.uuidString.lowercased()] }
    }

    func unavailableReason() async -> String? { state.withLock { $0.unavailable } }

    private func check() throws(Unavailable) {
        if let reason = state.withLock({ $0.unavailable }) { throw Unavailable(description: reason) }
    }
}
