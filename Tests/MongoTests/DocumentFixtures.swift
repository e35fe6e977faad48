import Events
import Foundation
import Mongo

/// A stored purchase with a deterministic id, so tests can predict order and duplicates.
func storedPurchase(
    _ number: Int,
    username: String = "joe",
    timestampMilliseconds: Int64 = 1_717_170_872_204,
    hundredths: Int64 = 119_530
) -> StoredPurchase {
    let hex = String(number, radix: 16)
    let id = UUID(uuidString: "00000000-0000-4000-8000-" + String(repeating: "0", count: 12 - hex.count) + hex)!
    let purchase = try! Purchase(
        username: username,
        userid: "id-\(username)",
        price: Price(hundredths: hundredths),
        timestamp: Timestamp(millisecondsSinceEpoch: timestampMilliseconds)
    )
    return StoredPurchase(
        event: PurchaseEvent(
            purchaseId: id,
            purchase: purchase,
            receivedAt: Timestamp(millisecondsSinceEpoch: timestampMilliseconds + 5)
        ),
        partition: Int32(number % 4),
        offset: Int64(number)
    )
}
