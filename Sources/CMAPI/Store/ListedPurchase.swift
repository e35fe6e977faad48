import Foundation
import Mongo
import PurchaseDomain
import PurchaseWire

/// What a list page shows of a stored purchase, read straight from MongoDB's bytes with only the
/// listed fields projected (``MongoPurchaseStore/listed(username:userid:limit:after:)``): no
/// document tree, no `String` for the id, the price or the time.
struct ListedPurchase: Hashable, Sendable {
    var id: UUID
    var username: String
    var userid: String
    var price: Price
    var timestamp: Timestamp

    init(id: UUID, username: String, userid: String, price: Price, timestamp: Timestamp) {
        self.id = id
        self.username = username
        self.userid = userid
        self.price = price
        self.timestamp = timestamp
    }

    init(_ stored: StoredPurchase) {
        self.init(
            id: stored.event.purchaseId, username: stored.event.purchase.username,
            userid: stored.event.purchase.userid, price: stored.event.purchase.price,
            timestamp: stored.event.purchase.timestamp)
    }

    var resumePoint: PurchasePageResumePoint {
        PurchasePageResumePoint(timestamp: timestamp, purchaseId: id.lowercasedString)
    }

    /// The item as ``PurchaseListItem/appendJSON(to:)`` writes it, byte for byte.
    func appendJSON(to output: inout [UInt8]) {
        id.withLowercasedText { id in
            JSONText.append(#"{"_id":""#, to: &output)
            output.append(contentsOf: id)
            JSONText.append(#"","purchaseId":""#, to: &output)
            output.append(contentsOf: id)
        }
        JSONText.append(#"","username":"#, to: &output)
        JSONText.appendString(username, to: &output)
        JSONText.append(#","userid":"#, to: &output)
        JSONText.appendString(userid, to: &output)
        JSONText.append(#","price":""#, to: &output)
        price.appendDescription(to: &output)
        JSONText.append(#"","timestamp":""#, to: &output)
        timestamp.appendRFC3339(to: &output)
        JSONText.append(#""}"#, to: &output)
    }
}

/// One document of a list page: a purchase to list, or one that cannot be listed.
enum ListedDocument: Hashable, Sendable {
    case purchase(ListedPurchase)
    case unreadable(UnreadableDocument)

    var purchase: ListedPurchase? {
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

extension ListedDocument {
    init(_ document: StoredDocument) {
        switch document {
        case .purchase(let stored): self = .purchase(ListedPurchase(stored))
        case .unreadable(let unreadable): self = .unreadable(unreadable)
        }
    }

    /// Reads the listed fields of a stored document in place, with the rules and reasons of
    /// ``StoredPurchase/init(document:)`` for them.
    init(_ elements: borrowing BSONElements) {
        self = Self.reading(elements)
    }

    private static func reading(_ elements: borrowing BSONElements) -> ListedDocument {
        var id: UUID?
        var idSeen = false
        var username: String?
        var usernameSeen = false
        var userid: String?
        var useridSeen = false
        var price: BSONDecimal128?
        var priceSeen = false
        var timestamp: Int64?
        var timestampSeen = false
        elements.readFields { key, value in
            // The first of a key counts, as BSONDocument's subscript takes it, and a value of a
            // type BSONDocument leaves out is not there at all.
            if case .unsupported = value { return }
            switch ListedField(key) {
            case .id? where !idSeen:
                idSeen = true
                if case .string(let bytes) = value { id = UUID(asciiBytes: bytes) }
            case .username? where !usernameSeen:
                usernameSeen = true
                if case .string(let bytes) = value { username = String(decoding: bytes, as: UTF8.self) }
            case .userid? where !useridSeen:
                useridSeen = true
                if case .string(let bytes) = value { userid = String(decoding: bytes, as: UTF8.self) }
            case .price? where !priceSeen:
                priceSeen = true
                if case .decimal128(let decimal) = value { price = decimal }
            case .timestamp? where !timestampSeen:
                timestampSeen = true
                if case .date(let milliseconds) = value { timestamp = milliseconds }
            default: break
            }
        }
        func invalid(_ description: String) -> ListedDocument {
            let error = InvalidStoredPurchase(description: "stored purchase: \(description)")
            return .unreadable(UnreadableDocument(elements.document, error))
        }
        func invalid(_ field: String, _ seen: Bool, _ reason: String) -> ListedDocument {
            invalid("\(field) \(seen ? reason : "is missing")")
        }
        // In StoredPurchase(document:)'s order: each field's type, then the names' rules.
        guard let id else { return invalid("_id", idSeen, "is not a purchase id") }
        guard let username else { return invalid("username", usernameSeen, "is not a string") }
        guard let userid else { return invalid("userid", useridSeen, "is not a string") }
        guard let decimal = price, let amount = Price(decimal128: decimal) else {
            return invalid("price", priceSeen, "is not a Decimal128 amount with at most 2 fraction digits")
        }
        guard let timestamp else { return invalid("timestamp", timestampSeen, "is not a date") }
        let violations = [("username", username), ("userid", userid)].compactMap { field, value in
            Purchase.nameViolation(value).map { "\(field) \($0)" }
        }
        guard violations.isEmpty else { return invalid(violations.joined(separator: "; ")) }
        return .purchase(
            ListedPurchase(
                id: id, username: username, userid: userid, price: amount,
                timestamp: Timestamp(millisecondsSinceEpoch: timestamp)))
    }
}

/// The fields a list reads, told apart by their bytes.
private enum ListedField {
    case id, username, userid, price, timestamp

    /// The field a key names. The key's bytes are compared one by one with the name's:
    /// `elementsEqual` walked a `String.UTF8View`'s index machinery (~350 instructions a key,
    /// five keys an item), and over two raw buffers still ~200 (issue 31).
    init?(_ key: UnsafeRawBufferPointer) {
        switch key.count {
        case 3 where Self.is(key, "_id"): self = .id
        case 5 where Self.is(key, "price"): self = .price
        case 6 where Self.is(key, "userid"): self = .userid
        case 8 where Self.is(key, "username"): self = .username
        case 9 where Self.is(key, "timestamp"): self = .timestamp
        default: return nil
        }
    }

    /// Whether `key` holds `name`'s bytes, of which it has as many.
    private static func `is`(_ key: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        let bytes = name.utf8Start
        for index in key.indices where key[index] != bytes[index] { return false }
        return true
    }
}

extension Price {
    /// The price a stored Decimal128 holds, exactly, under the rules of ``Price/init(exactDecimal:)``:
    /// `nil` for a negative amount (zero included), more than 2 fraction digits, an amount too
    /// large, an infinity or a NaN.
    init?(decimal128 decimal: BSONDecimal128) {
        guard let (negative, coefficient, exponent) = decimal.finite else {
            // A coefficient above 64 bits: exact only through the text, and far above any price.
            guard let price = try? Price(exactDecimal: decimal.text) else { return nil }
            self = price
            return
        }
        guard !negative else { return nil }
        var hundredths = coefficient
        if exponent >= -2 {
            for _ in 0..<(exponent + 2) where hundredths != 0 {
                let (product, overflow) = hundredths.multipliedReportingOverflow(by: 10)
                guard !overflow else { return nil }
                hundredths = product
            }
        } else {
            for _ in 0..<(-2 - exponent) {
                guard hundredths % 10 == 0 else { return nil }
                hundredths /= 10
            }
        }
        guard hundredths <= UInt64(Int64.max) else { return nil }
        self.init(hundredths: Int64(hundredths))
    }
}

extension UUID {
    /// A UUID's 36-character text (either case), as `UUID(uuidString:)` reads it, from its bytes.
    init?(asciiBytes bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 36 else { return nil }
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let parsed = withUnsafeMutableBytes(of: &value) { output -> Bool in
            var index = 0
            for position in 0..<16 {
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    guard bytes[index] == UInt8(ascii: "-") else { return false }
                    index += 1
                }
                guard let high = Self.hexValue(bytes[index]), let low = Self.hexValue(bytes[index + 1]) else {
                    return false
                }
                output[position] = high << 4 | low
                index += 2
            }
            return true
        }
        guard parsed else { return nil }
        self.init(uuid: value)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
