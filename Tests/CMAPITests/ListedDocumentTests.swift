import Foundation
import Mongo
import PurchaseDomain
import Testing

@testable import CMAPI

/// How a list reads a stored document in place (``ListedDocument``), apart from the store: the
/// store's projection sends only the listed fields, but the reading itself must not take a field
/// for another.
@Suite struct ListedDocumentTests {
    /// Fields whose names have the length of a listed field's (`userName`, `userId`, `createdAt`
    /// and the like, as another writer might add) are not the listed fields, even before them.
    @Test func aFieldNamedLikeAListedOneIsNotTakenForIt() throws {
        let stored = storedPurchase(1)
        var document = BSONDocument([
            ("_ix", .string("00000000-0000-4000-8000-00000000ffff")),
            ("userName", .string("mallory")),
            ("userId", .string("id-mallory")),
            ("total", .decimal128("9.99")),
            ("createdAt", .date(1)),
        ])
        document.elements += stored.document.elements
        let listed = try document.withElements { ListedDocument($0) }
        #expect(listed == .purchase(ListedPurchase(stored)))
    }
}
