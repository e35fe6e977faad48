/// cm-api's list answer as cm-server passes it on: the text of its `purchases` array as cm-api
/// wrote it, the number of items and the next cursor. cm-server writes its own answer around that
/// text instead of decoding every field into a `String` and encoding it again.
///
/// Only a page that holds nothing cm-server would drop is taken: an object with `status` a string,
/// `nextCursor` a string, `null` or absent, and `purchases` an array of objects each with exactly
/// the six fields of ``PurchaseListItem``, each once and a string. Anything else (a member an item
/// should not have, a field twice, and every page ``PurchaseListPage/init(json:)`` refuses) is
/// `nil`: the caller reads it with ``PurchaseListPage/init(json:)``, which takes it or says why
/// not, exactly as before. So a client gets the contract's fields and nothing else either way.
public struct PurchaseListPageText: Sendable {
    /// `[…]`: the `purchases` array's bytes, checked as above.
    public var purchases: ArraySlice<UInt8>
    public var count: Int
    public var nextCursor: String?

    /// Reads `json`, an answer of `GET /buyList/{username}`; `nil` unless it is a page of the plain
    /// shape above.
    public init?(json: [UInt8]) {
        var sawStatus = false
        var sawNextCursor = false
        var nextCursor: String?
        var purchases: Range<Int>?
        var count = 0
        do {
            try JSONReader.read(json) { reader throws(JSONReader.SyntaxError) in
                guard reader.isAt(UInt8(ascii: "{")) else { throw reader.error("not a page") }
                try reader.readObject(depth: 1) { reader, key throws(JSONReader.SyntaxError) in
                    switch key {
                    case "status" where !sawStatus:
                        sawStatus = true
                        try reader.skipRequiredString("status")
                    case "nextCursor" where !sawNextCursor:
                        sawNextCursor = true
                        nextCursor = try reader.readOptionalString("nextCursor")
                    case "purchases" where purchases == nil:
                        guard reader.isAt(UInt8(ascii: "[")) else { throw reader.error("purchases must be an array") }
                        let start = reader.offset
                        try reader.readArray(depth: 2) { reader throws(JSONReader.SyntaxError) in
                            try Self.checkItem(&reader)
                            count += 1
                        }
                        purchases = start..<reader.offset
                    // The page's other members are dropped on the way, as the decoder drops them.
                    default: _ = try reader.readValue(depth: 1)
                    }
                }
            }
        } catch {
            return nil
        }
        guard sawStatus, let purchases else { return nil }
        self.purchases = json[purchases]
        self.count = count
        self.nextCursor = nextCursor
    }

    private static let fieldNames = PurchaseListItem.fieldNames.map { Array($0.utf8) }

    /// An item of exactly the six fields, each once and a string, or an error.
    private static func checkItem(_ reader: inout JSONReader) throws(JSONReader.SyntaxError) {
        guard reader.isAt(UInt8(ascii: "{")) else { throw reader.error("a purchase must be an object") }
        var seen = 0
        try reader.readObject(depth: 3, names: fieldNames) { reader, name throws(JSONReader.SyntaxError) in
            guard let position = name, seen & (1 << position) == 0 else {
                throw reader.error("not one of a purchase's fields once")
            }
            seen |= 1 << position
            try reader.skipRequiredString(PurchaseListItem.fieldNames[position])
        }
        guard seen == (1 << PurchaseListItem.fieldNames.count) - 1 else { throw reader.error("a field is missing") }
    }
}
