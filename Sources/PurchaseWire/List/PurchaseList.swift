public import PurchaseDomain

/// One purchase in a user's list, as `GET /buyList/{username}` (cm-api) and
/// `GET /getAllUserBuys/{username}` (cm-server) answer it (`docs/CONTRACT.md`). Prices and timestamps
/// stay text, so no binary float ever touches them on the way through.
public struct PurchaseListItem: Codable, Hashable, Sendable {
    /// The stored document's `_id`, equal to `purchaseId`.
    public var id: String
    public var purchaseId: String
    public var username: String
    public var userid: String
    /// The exact decimal price, e.g. `"1195.30"`.
    public var price: String
    /// RFC 3339, UTC, milliseconds.
    public var timestamp: String

    public init(id: String, purchaseId: String, username: String, userid: String, price: String, timestamp: String) {
        self.id = id
        self.purchaseId = purchaseId
        self.username = username
        self.userid = userid
        self.price = price
        self.timestamp = timestamp
    }

    enum CodingKeys: String, CodingKey {
        case id = "_id"
        case purchaseId, username, userid, price, timestamp
    }
}

/// cm-api's answer to `GET /buyList/{username}`: `{"status":"Ok!","purchases":[…],"nextCursor":…}`.
/// `nextCursor` is absent on the last page.
public struct PurchaseListPage: Codable, Hashable, Sendable {
    public var status: String
    public var purchases: [PurchaseListItem]
    public var nextCursor: String?

    public init(purchases: [PurchaseListItem], nextCursor: String?) {
        self.status = "Ok!"
        self.purchases = purchases
        self.nextCursor = nextCursor
    }
}

/// The `limit` query parameter of the purchase lists: default 100, at most 1000.
public enum PurchaseListLimit {
    public static let `default` = 100
    public static let maximum = 1000

    /// The page size `text` asks for (`nil`: the default).
    /// - Throws: a ``FieldError`` for `limit` when it is not a whole number in 1...1000.
    public static func parse(_ text: String?) throws(FieldError) -> Int {
        guard let text else { return `default` }
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = Int(text), (1...maximum).contains(value)
        else {
            throw FieldError(field: "limit", reason: "must be a whole number from 1 to \(maximum)")
        }
        return value
    }
}

/// The `cursor` of both purchase lists: opaque to clients, at most ``maximumBytes``. cm-server
/// passes it on unread; cm-api made it and decodes it. A longer or empty one is a 400 on both.
public enum PurchaseListCursor {
    /// cm-api's cursors (base64url of a timestamp and a purchaseId) are about 70 bytes.
    public static let maximumBytes = 256

    /// The cursor `text`, if it is within the rule every service applies before its own.
    /// - Throws: a ``FieldError`` for `cursor`.
    public static func check(_ text: String) throws(FieldError) -> String {
        guard !text.isEmpty, text.utf8.count <= maximumBytes else { throw .invalidCursor }
        return text
    }
}

extension FieldError {
    /// What a `cursor` that no page handed out gets.
    public static let invalidCursor = FieldError(field: "cursor", reason: "must be a nextCursor from a previous page")
}
