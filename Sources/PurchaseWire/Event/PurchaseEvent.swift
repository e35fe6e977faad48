public import Foundation
public import PurchaseDomain

/// The event produced to Kafka for every accepted purchase, and consumed into MongoDB.
public struct PurchaseEvent: Hashable, Sendable {
    /// The version of the value format this code writes and reads.
    public static let schemaVersion = 1

    public var purchaseId: UUID
    public var purchase: Purchase
    /// When cm-server accepted the request.
    public var receivedAt: Timestamp
    /// For a purchase made with an `Idempotency-Key` (whose purchaseId the key decides): what the
    /// request was, so that the key reused for another purchase is recognised where it meets the
    /// first (docs/CONTRACT.md, "Idempotency").
    public var idempotencyFingerprint: IdempotencyFingerprint?

    public init(
        purchaseId: UUID, purchase: Purchase, receivedAt: Timestamp,
        idempotencyFingerprint: IdempotencyFingerprint? = nil
    ) {
        self.purchaseId = purchaseId
        self.purchase = purchase
        self.receivedAt = receivedAt
        self.idempotencyFingerprint = idempotencyFingerprint
    }

    /// The Kafka message key: one user's purchases share a partition and so keep their order.
    public var kafkaKey: [UInt8] {
        Array(purchase.userid.utf8)
    }
}

/// Why a Kafka value is not a purchase event; the description goes into the dead-letter header.
public struct PurchaseEventDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public let description: String
}

extension PurchaseEvent {
    /// The JSON value: `{"schemaVersion":1,"purchaseId","username","userid","price","timestamp","receivedAt"}`,
    /// with `price` as a two-digit decimal string and both instants in RFC 3339 UTC milliseconds,
    /// and `idempotencyFingerprint` when the request had an `Idempotency-Key` (an addition that
    /// readers of schema version 1 which do not know it ignore).
    private struct Wire: Codable {
        var idempotencyFingerprint: String?
        var schemaVersion: Int
        var purchaseId: String
        var username: String
        var userid: String
        var price: String
        var timestamp: String
        var receivedAt: String
    }

    /// The Kafka value for this event: the JSON `JSONEncoder` wrote with sorted keys and unescaped
    /// slashes, written by hand (`JSONEncoder` cost more than the rest of a dry run; EventsTests
    /// hold the bytes equal to its output).
    public func kafkaValue() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(192 + purchase.username.utf8.count + purchase.userid.utf8.count)
        output.append(UInt8(ascii: "{"))
        if let idempotencyFingerprint {
            JSONText.append(#""idempotencyFingerprint":""#, to: &output)
            output.append(contentsOf: idempotencyFingerprint.text.utf8)
            JSONText.append(#"","#, to: &output)
        }
        JSONText.append(#""price":"#, to: &output)
        JSONText.appendString(purchase.price.description, to: &output)
        JSONText.append(#","purchaseId":""#, to: &output)
        purchaseId.appendLowercased(to: &output)
        JSONText.append(#"","receivedAt":""#, to: &output)
        receivedAt.appendRFC3339(to: &output)
        JSONText.append(#"","schemaVersion":"#, to: &output)
        output.append(contentsOf: String(Self.schemaVersion).utf8)
        JSONText.append(#","timestamp":""#, to: &output)
        purchase.timestamp.appendRFC3339(to: &output)
        JSONText.append(#"","userid":"#, to: &output)
        JSONText.appendString(purchase.userid, to: &output)
        JSONText.append(#","username":"#, to: &output)
        JSONText.appendString(purchase.username, to: &output)
        output.append(UInt8(ascii: "}"))
        return output
    }

    /// Reads and validates a Kafka value with the same rules cm-server applies to requests.
    public init(kafkaValue: [UInt8]) throws(PurchaseEventDecodingError) {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(kafkaValue))
        } catch {
            throw PurchaseEventDecodingError(description: "not a purchase event: \(Self.explain(error))")
        }
        guard wire.schemaVersion == Self.schemaVersion else {
            throw PurchaseEventDecodingError(description: "unsupported schemaVersion \(wire.schemaVersion)")
        }
        guard let purchaseId = UUID(uuidString: wire.purchaseId) else {
            throw PurchaseEventDecodingError(description: "purchaseId is not a UUID")
        }
        // Each field is parsed on its own so that the reason names it.
        func field<T>(_ name: String, _ parse: () throws -> T) throws(PurchaseEventDecodingError) -> T {
            do {
                return try parse()
            } catch {
                throw PurchaseEventDecodingError(description: "\(name) \(error)")
            }
        }
        let price = try field("price") { try Price(parsing: Substring(wire.price)) }
        let timestamp = try field("timestamp") { try Timestamp(rfc3339: wire.timestamp) }
        let receivedAt = try field("receivedAt") { try Timestamp(rfc3339: wire.receivedAt) }
        var fingerprint: IdempotencyFingerprint?
        if let text = wire.idempotencyFingerprint {
            guard let valid = IdempotencyFingerprint(text: text) else {
                throw PurchaseEventDecodingError(description: "idempotencyFingerprint is not 64 lowercase hex digits")
            }
            fingerprint = valid
        }
        do {
            let purchase = try Purchase(
                username: wire.username, userid: wire.userid, price: price, timestamp: timestamp)
            self.init(
                purchaseId: purchaseId, purchase: purchase, receivedAt: receivedAt, idempotencyFingerprint: fingerprint)
        } catch {
            throw PurchaseEventDecodingError(description: error.description)
        }
    }

    private static func explain(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _): "missing \(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            "wrong type for \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case .dataCorrupted: "malformed JSON"
        default: "\(error)"
        }
    }
}
