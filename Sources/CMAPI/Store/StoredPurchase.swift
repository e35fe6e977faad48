import Foundation
import PurchaseDomain
import PurchaseWire

/// A purchase as cm-api stores it (`docs/CONTRACT.md`, "MongoDB"): the event, and the Kafka
/// partition and offset it came from. Its id is the purchaseId, so a redelivered event is
/// recognised as already stored.
struct StoredPurchase: Hashable, Sendable {
    var event: PurchaseEvent
    var partition: Int32
    var offset: Int64

    /// The purchase id as stored: the lowercase UUID text.
    var id: String { event.purchaseId.lowercasedString }

    /// Where this purchase stands in its user's list: lists are newest first by this point.
    var resumePoint: PurchasePageResumePoint {
        PurchasePageResumePoint(timestamp: event.purchase.timestamp, purchaseId: id)
    }
}

/// A place in a user's newest-first list: (timestamp, purchaseId). A page that starts after it
/// holds the purchases ordered below it.
struct PurchasePageResumePoint: Hashable, Comparable, Sendable {
    var timestamp: Timestamp
    var purchaseId: String

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.timestamp, lhs.purchaseId) < (rhs.timestamp, rhs.purchaseId)
    }
}
