/// Hand-written JSON for a purchase list, the answer cm-server re-encodes on every
/// `GET /getAllUserBuys`. Foundation's `JSONEncoder` took 174 µs for a page of 100 on the
/// benchmark machine (it builds a dictionary per object), about a fifth of the list proxy's whole
/// cost; every field here is a string, so the writer is only the string escaping RFC 8259 §7
/// requires, and `JSONDecoder` reads its output back to the same values (PurchaseWireTests).
extension PurchaseListItem {
    /// Appends `{"_id":…,"purchaseId":…,"username":…,"userid":…,"price":…,"timestamp":…}`.
    public func appendJSON(to output: inout [UInt8]) {
        JSONText.append(#"{"_id":"#, to: &output)
        JSONText.appendString(id, to: &output)
        JSONText.append(#","purchaseId":"#, to: &output)
        JSONText.appendString(purchaseId, to: &output)
        JSONText.append(#","username":"#, to: &output)
        JSONText.appendString(username, to: &output)
        JSONText.append(#","userid":"#, to: &output)
        JSONText.appendString(userid, to: &output)
        JSONText.append(#","price":"#, to: &output)
        JSONText.appendString(price, to: &output)
        JSONText.append(#","timestamp":"#, to: &output)
        JSONText.appendString(timestamp, to: &output)
        output.append(UInt8(ascii: "}"))
    }
}

extension PurchaseListPage {
    /// `{"status":…,"purchases":[…],"nextCursor":…}` (no `nextCursor` on the last page): cm-api's
    /// list answer, by the same writer. Its bytes are the same for the same page every time
    /// (`JSONEncoder` orders an object's members differently from one call to the next), as a
    /// strong `ETag` requires.
    public var json: [UInt8] {
        var list = PurchaseListText(status: status, expectedCount: purchases.count)
        for item in purchases {
            list.startPurchase()
            item.appendJSON(to: &list.output)
        }
        return list.finish(nextCursor: nextCursor)
    }
}

/// ``PurchaseListPage/json``'s text, written a purchase at a time: cm-api writes its pages from
/// the documents it reads in place with this, without making ``PurchaseListItem``s first.
///
///     var list = PurchaseListText(status: "Ok!", expectedCount: count)
///     for purchase in purchases {
///         list.startPurchase()
///         purchase.appendJSON(to: &list.output)  // as PurchaseListItem.appendJSON writes one
///     }
///     return list.finish(nextCursor: nextCursor)
///
/// No closures and no generics: a debug build (which `make test`'s cost guards measure) would box
/// each purchase or the text.
public struct PurchaseListText {
    /// The text so far; a purchase is appended here after ``startPurchase()``.
    public var output: [UInt8] = []
    private var empty = true

    /// Starts the text; `expectedCount` (about how many purchases) sizes it once.
    public init(status: String, expectedCount: Int) {
        output.reserveCapacity(64 + expectedCount * 256)
        JSONText.append(#"{"status":"#, to: &output)
        JSONText.appendString(status, to: &output)
        JSONText.append(#","purchases":["#, to: &output)
    }

    /// Separates the purchase about to be appended from the one before.
    public mutating func startPurchase() {
        if !empty { output.append(UInt8(ascii: ",")) }
        empty = false
    }

    /// The whole text, with `nextCursor` when there is a next page.
    public consuming func finish(nextCursor: String?) -> [UInt8] {
        output.append(UInt8(ascii: "]"))
        if let nextCursor {
            JSONText.append(#","nextCursor":"#, to: &output)
            JSONText.appendString(nextCursor, to: &output)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }
}
