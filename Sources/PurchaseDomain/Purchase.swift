/// A purchase as a client submits it, after validation.
public struct Purchase: Hashable, Sendable {
    public var username: String
    public var userid: String
    public var price: Price
    public var timestamp: Timestamp

    /// Builds a purchase from already valid parts.
    /// - Throws: ``PurchaseDecodingError/invalid(_:)`` if a name breaks its rule.
    public init(username: String, userid: String, price: Price, timestamp: Timestamp) throws(PurchaseDecodingError) {
        let errors = [("username", username), ("userid", userid)].compactMap { field, value in
            Self.nameViolation(value).map { FieldError(field: field, reason: $0) }
        }
        guard errors.isEmpty else { throw .invalid(errors) }
        self.username = username
        self.userid = userid
        self.price = price
        self.timestamp = timestamp
    }

    /// The largest username or userid, in UTF-8 bytes.
    public static let maximumNameBytes = 128

    /// Why `value` is not an acceptable username or userid, or `nil` when it is.
    public static func nameViolation(_ value: String) -> String? {
        let bytes = value.utf8.count
        if bytes == 0 { return "must not be empty" }
        if bytes > maximumNameBytes { return "must be at most \(maximumNameBytes) UTF-8 bytes (got \(bytes))" }
        // ASCII's control characters are below space and DEL; only other text needs Unicode's
        // general category (C1 controls, U+0080 to U+009F), which costs a table lookup per scalar.
        // One pass over the bytes finds both (two passes cost ~380 instructions a name, and a
        // list page reads 200 names).
        var hasASCIIControl = false
        var isASCII = true
        for byte in value.utf8 {
            if byte < 0x20 || byte == 0x7F {
                hasASCIIControl = true
                break
            }
            if byte >= 0x80 { isASCII = false }
        }
        if hasASCIIControl
            || (!isASCII && value.unicodeScalars.contains { $0.properties.generalCategory == .control })
        {
            return "must not contain control characters"
        }
        return nil
    }
}

extension StringProtocol {
    /// Whether two names are the same bytes: the rule wherever the shop compares a username or a
    /// userid (docs/CONTRACT.md). MongoDB compares bytes, while Swift's `==` takes canonically
    /// equivalent strings as equal ("café" in NFC and in NFD), so a check made with `==` would let
    /// one name pass for another that is stored as other bytes.
    public func hasSameBytes(as other: some StringProtocol) -> Bool {
        utf8.elementsEqual(other.utf8)
    }
}

/// One rule a field of a request broke.
public struct FieldError: Hashable, Sendable, Codable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field) \(reason)" }
}

extension FieldError: Error {}

/// Why a request body is not a purchase. Nothing may be produced for either case.
public enum PurchaseDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The body is not well-formed JSON (HTTP 400).
    case malformedJSON(String)
    /// The body is JSON but breaks the purchase rules, one reason per field (HTTP 422).
    case invalid([FieldError])

    public var description: String {
        switch self {
        case .malformedJSON(let reason): "malformed JSON: \(reason)"
        case .invalid(let errors): errors.map(\.description).joined(separator: "; ")
        }
    }
}

/// Which purchase times a shop takes. Lists are ordered by the purchase's own timestamp, newest
/// first, so a time far in the future would pin a purchase to the top of its owner's list for
/// as long as it lasts; a time before 1970 is no purchase of this shop.
public struct TimestampRule: Hashable, Sendable {
    /// The earliest instant accepted, 1970-01-01T00:00:00.000Z (the Unix epoch: no purchase of
    /// this shop is older, and tools that take times as unsigned seconds read nothing earlier).
    public static let earliest = Timestamp(millisecondsSinceEpoch: 0)
    /// The largest ``maximumFuture`` a service may be configured with: 7 days.
    public static let largestMaximumFuture: Duration = .seconds(7 * 86_400)

    /// How far past the server's receive time a timestamp may be (clocks drift, time zones are
    /// got wrong); default 24 hours.
    public var maximumFuture: Duration

    public init(maximumFuture: Duration = .seconds(86_400)) {
        precondition(maximumFuture >= .zero && maximumFuture <= Self.largestMaximumFuture)
        self.maximumFuture = maximumFuture
    }

    /// Why `timestamp` is not accepted for a purchase received at `receivedAt`, or `nil`.
    public func violation(_ timestamp: Timestamp, receivedAt: Timestamp) -> String? {
        if timestamp < Self.earliest { return "must not be before 1970-01-01T00:00:00Z" }
        let seconds = maximumFuture.components.seconds
        let latest = receivedAt.millisecondsSinceEpoch + seconds * 1000
        guard timestamp.millisecondsSinceEpoch <= latest else {
            let window =
                switch (seconds, seconds % 3600) {
                case (3600, _): "1 hour"
                case (_, 0): "\(seconds / 3600) hours"
                default: "\(seconds) seconds"
                }
            return "must not be more than \(window) after the server's time (\(receivedAt))"
        }
        return nil
    }
}

/// What a client asked for in a `POST /buy` body: the purchase, and whether it named its own
/// time (without one the server's receive time is the purchase's).
public struct PurchaseRequest: Hashable, Sendable {
    public var purchase: Purchase
    /// Whether the body had a `timestamp`.
    public var timestampGiven: Bool

    /// What makes two requests the same request, for `Idempotency-Key` (see
    /// ``IdempotencyFingerprint``).
    public var fingerprint: IdempotencyFingerprint {
        IdempotencyFingerprint(self)
    }

    public init(purchase: Purchase, timestampGiven: Bool) {
        self.purchase = purchase
        self.timestampGiven = timestampGiven
    }
}

extension Purchase {
    package static let fieldNames = ["username", "userid", "price", "timestamp"]

    /// A purchase from parts already checked.
    package init(valid parts: (username: String, userid: String, price: Price, timestamp: Timestamp)) {
        username = parts.username
        userid = parts.userid
        price = parts.price
        timestamp = parts.timestamp
    }
}
