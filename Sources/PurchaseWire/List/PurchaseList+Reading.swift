/// cm-api's list answer read by hand, the way `JSONDecoder` reads it into ``PurchaseListPage``
/// (PurchaseWireTests hold the two to the same verdicts): every item field present and a string,
/// `status` a string, `nextCursor` a string, `null` or absent, members it does not know
/// ignored, and the last of duplicate members counting. `JSONDecoder` was most of the list
/// proxy's cost (bench/per_request.py: 4.3 million instructions a page of 100, its scanner,
/// keyed containers and the generic metadata and hashing they need).
extension PurchaseListPage {
    /// Why an answer is not a purchase list, with the byte offset where reading stopped.
    public struct ReadingError: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var offset: Int
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Reads `json`, an answer of `GET /buyList/{username}`.
    public init(json: [UInt8]) throws(ReadingError) {
        var status: String?
        var purchases: [PurchaseListItem]?
        var nextCursor: String?
        var sawNextCursor = false
        do {
            try JSONReader.read(json) { reader throws(JSONReader.SyntaxError) in
                guard reader.isAt(UInt8(ascii: "{")) else { throw reader.error("the answer must be an object") }
                try reader.readObject(depth: 1) { reader, key throws(JSONReader.SyntaxError) in
                    switch key {
                    case "status" where status == nil: status = try reader.readRequiredString("status")
                    case "nextCursor" where !sawNextCursor:
                        sawNextCursor = true
                        nextCursor = try reader.readOptionalString("nextCursor")
                    case "purchases" where purchases == nil:
                        guard reader.isAt(UInt8(ascii: "[")) else { throw reader.error("purchases must be an array") }
                        var items: [PurchaseListItem] = []
                        try reader.readArray(depth: 2) { reader throws(JSONReader.SyntaxError) in
                            items.append(try PurchaseListItem(reading: &reader))
                        }
                        purchases = items
                    default: _ = try reader.readValue(depth: 1)
                    }
                }
                guard status != nil else { throw reader.error("status is missing") }
                guard purchases != nil else { throw reader.error("purchases is missing") }
            }
        } catch {
            throw ReadingError(reason: error.reason, offset: error.offset)
        }
        self.init(purchases: purchases ?? [], nextCursor: nextCursor)
        self.status = status ?? ""
    }
}

extension PurchaseListItem {
    /// Reads one item of a list answer at `reader`.
    init(reading reader: inout JSONReader) throws(JSONReader.SyntaxError) {
        guard reader.isAt(UInt8(ascii: "{")) else { throw reader.error("a purchase must be an object") }
        var fields: [String?] = [nil, nil, nil, nil, nil, nil]
        try reader.readObject(depth: 3) { reader, key throws(JSONReader.SyntaxError) in
            if let position = Self.fieldNames.firstIndex(of: key), fields[position] == nil {
                fields[position] = try reader.readRequiredString(key)
            } else {
                _ = try reader.readValue(depth: 3)
            }
        }
        guard let id = fields[0], let purchaseId = fields[1], let username = fields[2], let userid = fields[3],
            let price = fields[4], let timestamp = fields[5]
        else {
            let missing = zip(Self.fieldNames, fields).first { $0.1 == nil }?.0 ?? "a field"
            throw reader.error("a purchase lacks \(missing)")
        }
        self.init(
            id: id, purchaseId: purchaseId, username: username, userid: userid, price: price, timestamp: timestamp)
    }

    /// The contract's names of the fields, in the order of ``init(id:purchaseId:username:userid:price:timestamp:)``.
    static let fieldNames = ["_id", "purchaseId", "username", "userid", "price", "timestamp"]
}
