internal import Crypto

/// What makes two `POST /buy` requests under one `Idempotency-Key` the same request: SHA-256 of
/// the purchase as the client sent it (username, userid, the price in hundredths, and the
/// timestamp, or that there was none), as 64 lowercase hex digits. It travels with the purchase
/// event and is stored with the purchase, so a key reused for another purchase is recognised
/// wherever it meets the first (draft-ietf-httpapi-idempotency-key-header: the same key with
/// another payload is refused).
public struct IdempotencyFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let text: String

    public init(_ request: PurchaseRequest) {
        let purchase = request.purchase
        // Names never contain a NUL (a control character), so it separates fields unambiguously.
        var bytes = Array("v1".utf8)
        for field in [
            purchase.username, purchase.userid, String(purchase.price.hundredths),
            request.timestampGiven ? String(purchase.timestamp.millisecondsSinceEpoch) : "",
        ] {
            bytes.append(0)
            bytes += field.utf8
        }
        let hex = Array("0123456789abcdef".utf8)
        var digits: [UInt8] = []
        digits.reserveCapacity(64)
        for byte in SHA256.hash(data: bytes) {
            digits.append(hex[Int(byte >> 4)])
            digits.append(hex[Int(byte & 0x0F)])
        }
        text = String(decoding: digits, as: UTF8.self)
    }

    /// A fingerprint read back (from an event or a stored purchase); `nil` unless 64 lowercase
    /// hex digits.
    public init?(text: String) {
        guard text.utf8.count == 64,
            text.utf8.allSatisfy({
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
            })
        else { return nil }
        self.text = text
    }

    public var description: String { text }

    /// Whether a purchase stored under a key's purchaseId is what a request under the same key
    /// asks for again. A purchase stored before fingerprints existed has none: it is then the same
    /// when the names and the price are (its timestamp may have been the server's).
    public static func isSameRequest(
        stored: (fingerprint: IdempotencyFingerprint?, purchase: Purchase), as request: Purchase,
        fingerprint: IdempotencyFingerprint
    ) -> Bool {
        if let storedFingerprint = stored.fingerprint { return storedFingerprint == fingerprint }
        return stored.purchase.username.hasSameBytes(as: request.username)
            && stored.purchase.userid.hasSameBytes(as: request.userid) && stored.purchase.price == request.price
    }
}
