import Foundation
import PurchaseDomain
import PurchaseWire
import Testing

/// 2024-06-01T00:00:00.000Z, the receive time used when a body has no timestamp (after the
/// bodies' own 2024-05-31, as a purchase's time is).
let receivedAt = Timestamp(millisecondsSinceEpoch: 1_717_200_000_000)

func decode(_ json: String) throws(PurchaseDecodingError) -> Purchase {
    try Purchase(json: Array(json.utf8), receivedAt: receivedAt)
}

/// A body with every field valid except for the overrides, given as raw JSON member values.
func body(
    username: String? = #""joe""#,
    userid: String? = #""005""#,
    price: String? = #""1195.30""#,
    timestamp: String? = #""2024-05-31T15:54:32.204Z""#,
    extra: String = ""
) -> String {
    let members = [("username", username), ("userid", userid), ("price", price), ("timestamp", timestamp)]
        .compactMap { key, value in value.map { "\"\(key)\":\($0)" } }
    return "{" + (members + (extra.isEmpty ? [] : [extra])).joined(separator: ",") + "}"
}

struct AcceptedCase: CustomTestStringConvertible, Sendable {
    var name: String
    var json: String
    var username = "joe"
    var userid = "005"
    var price = "1195.30"
    var timestamp = "2024-05-31T15:54:32.204Z"
    var testDescription: String { name }
}

struct RejectedCase: CustomTestStringConvertible, Sendable {
    var name: String
    var json: String
    var field: String
    var reason: String
    var testDescription: String { name }
}

let accepted: [AcceptedCase] = [
    .init(name: "the original client's body", json: body()),
    .init(name: "price as a JSON number", json: body(price: "1195.30")),
    .init(name: "price as a whole number", json: body(price: "12"), price: "12.00"),
    .init(name: "price as a whole-number string", json: body(price: #""12""#), price: "12.00"),
    .init(name: "price with one fraction digit", json: body(price: #""0.5""#), price: "0.50"),
    .init(name: "price zero", json: body(price: "0"), price: "0.00"),
    .init(name: "price with exponent", json: body(price: "1.1953e3"), price: "1195.30"),
    .init(name: "price with negative exponent", json: body(price: "119530E-2"), price: "1195.30"),
    .init(name: "price with trailing zeros past two digits", json: body(price: "1.500"), price: "1.50"),
    .init(
        name: "price beyond double precision", json: body(price: "9007199254740993.01"), price: "9007199254740993.01"),
    .init(name: "largest price", json: body(price: "92233720368547758.07"), price: "92233720368547758.07"),
    .init(name: "zero with a huge exponent", json: body(price: "0e400"), price: "0.00"),
    .init(
        name: "unicode names", json: body(username: #""Zoë 山田 🛒""#, userid: #""ユーザー""#), username: "Zoë 山田 🛒",
        userid: "ユーザー"),
    .init(name: "escaped unicode and surrogate pair", json: body(username: #""\u00e9\ud83d\uded2""#), username: "é🛒"),
    .init(
        name: "operator-looking username is a literal string", json: body(username: #""{\"$gt\":\"\"}""#),
        username: #"{"$gt":""}"#),
    .init(
        name: "128-byte name", json: body(username: "\"" + String(repeating: "a", count: 128) + "\""),
        username: String(repeating: "a", count: 128)),
    .init(
        name: "128 bytes of 2-byte characters", json: body(userid: "\"" + String(repeating: "é", count: 64) + "\""),
        userid: String(repeating: "é", count: 64)),
    .init(name: "unknown fields are ignored", json: body(extra: #""coupon":{"code":[1,2,{"x":null}]},"qty":3"#)),
    .init(
        name: "whitespace around tokens",
        json:
            " \n{ \"username\" : \"joe\" ,\t\"userid\":\"005\", \"price\" : 1195.30 , \"timestamp\":\"2024-05-31T15:54:32.204Z\" }\r\n"
    ),
    .init(
        name: "no timestamp uses the receive time", json: body(timestamp: nil), timestamp: "2024-06-01T00:00:00.000Z"),
    .init(
        name: "null timestamp uses the receive time", json: body(timestamp: "null"),
        timestamp: "2024-06-01T00:00:00.000Z"),
    .init(
        name: "timestamp without fraction", json: body(timestamp: #""2024-05-31T15:54:32Z""#),
        timestamp: "2024-05-31T15:54:32.000Z"),
    .init(
        name: "timestamp with 1 fraction digit", json: body(timestamp: #""2024-05-31T15:54:32.2Z""#),
        timestamp: "2024-05-31T15:54:32.200Z"),
    .init(
        name: "timestamp with 2 fraction digits", json: body(timestamp: #""2024-05-31T15:54:32.20Z""#),
        timestamp: "2024-05-31T15:54:32.200Z"),
    .init(
        name: "timestamp with 4 fraction digits", json: body(timestamp: #""2024-05-31T15:54:32.2049Z""#),
        timestamp: "2024-05-31T15:54:32.204Z"),
    .init(
        name: "timestamp with 6 fraction digits", json: body(timestamp: #""2024-05-31T15:54:32.204999Z""#),
        timestamp: "2024-05-31T15:54:32.204Z"),
    .init(
        name: "timestamp with 9 fraction digits", json: body(timestamp: #""2024-05-31T15:54:32.999999999Z""#),
        timestamp: "2024-05-31T15:54:32.999Z"),
    .init(name: "timestamp with positive offset", json: body(timestamp: #""2024-05-31T17:54:32.204+02:00""#)),
    .init(
        name: "timestamp with negative offset across midnight",
        json: body(timestamp: #""2024-05-30T23:54:32.204-16:00""#)),
    .init(
        name: "timestamp with offset across a year", json: body(timestamp: #""2023-12-31T23:30:00-01:00""#),
        timestamp: "2024-01-01T00:30:00.000Z"),
    .init(name: "timestamp in lower case", json: body(timestamp: #""2024-05-31t15:54:32.204z""#)),
    .init(
        name: "timestamp on a leap day", json: body(timestamp: #""2024-02-29T00:00:00Z""#),
        timestamp: "2024-02-29T00:00:00.000Z"),
    .init(
        name: "timestamp at the Unix epoch", json: body(timestamp: #""1970-01-01T00:00:00Z""#),
        timestamp: "1970-01-01T00:00:00.000Z"),
    .init(
        name: "timestamp 24 hours after the receive time", json: body(timestamp: #""2024-06-02T00:00:00Z""#),
        timestamp: "2024-06-02T00:00:00.000Z"),
]

let rejected: [RejectedCase] = [
    .init(name: "missing username", json: body(username: nil), field: "username", reason: "is required"),
    .init(name: "null userid", json: body(userid: "null"), field: "userid", reason: "is required"),
    .init(name: "empty username", json: body(username: #""""#), field: "username", reason: "must not be empty"),
    .init(
        name: "129-byte username", json: body(username: "\"" + String(repeating: "a", count: 129) + "\""),
        field: "username", reason: "must be at most 128 UTF-8 bytes (got 129)"),
    .init(
        name: "129 bytes from a multi-byte character",
        json: body(userid: "\"" + String(repeating: "a", count: 127) + "é\""), field: "userid",
        reason: "must be at most 128 UTF-8 bytes (got 129)"),
    .init(
        name: "NUL in username", json: body(username: #""jo\u0000e""#), field: "username",
        reason: "must not contain control characters"),
    .init(
        name: "newline in userid", json: body(userid: #""00\n5""#), field: "userid",
        reason: "must not contain control characters"),
    .init(
        name: "C1 control in username", json: body(username: #""joe\u0085""#), field: "username",
        reason: "must not contain control characters"),
    .init(
        name: "tab after a non-ASCII character in userid", json: body(userid: #""café\t5""#), field: "userid",
        reason: "must not contain control characters"),
    .init(
        name: "DEL in username", json: body(username: #""joe\u007f""#), field: "username",
        reason: "must not contain control characters"),
    .init(
        name: "operator object as username", json: body(username: #"{"$gt":""}"#), field: "username",
        reason: "must be a string"),
    .init(name: "number as userid", json: body(userid: "5"), field: "userid", reason: "must be a string"),
    .init(name: "array as username", json: body(username: #"["joe"]"#), field: "username", reason: "must be a string"),
    .init(name: "missing price", json: body(price: nil), field: "price", reason: "is required"),
    .init(name: "negative price", json: body(price: "-1.00"), field: "price", reason: "must not be negative"),
    .init(
        name: "negative price string", json: body(price: #""-0.01""#), field: "price", reason: "must not be negative"),
    .init(
        name: "NaN price string", json: body(price: #""NaN""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(
        name: "Infinity price string", json: body(price: #""Infinity""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(
        name: "1e400 price", json: body(price: "1e400"), field: "price", reason: "must be at most 92233720368547758.07"),
    .init(
        name: "price one cent over the maximum", json: body(price: "92233720368547758.08"), field: "price",
        reason: "must be at most 92233720368547758.07"),
    .init(
        name: "3-decimal price number", json: body(price: "1.005"), field: "price",
        reason: "must have at most 2 fraction digits"),
    .init(
        name: "3-decimal price string", json: body(price: #""1.005""#), field: "price",
        reason: "must have at most 2 fraction digits"),
    .init(
        name: "digits that would round away", json: body(price: "1.0000000000000000000000000000000000000001"),
        field: "price", reason: "must have at most 2 fraction digits"),
    .init(
        name: "tiny exponent", json: body(price: "1e-400"), field: "price",
        reason: "must have at most 2 fraction digits"),
    .init(
        name: "price string with exponent", json: body(price: #""1e3""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(
        name: "price string with spaces", json: body(price: #"" 12.00""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(
        name: "price string with comma", json: body(price: #""1,195.30""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(
        name: "price string ending in a point", json: body(price: #""12.""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(
        name: "empty price string", json: body(price: #""""#), field: "price",
        reason: "must be a decimal amount such as \"1195.30\""),
    .init(name: "boolean price", json: body(price: "true"), field: "price", reason: "must be a string or a number"),
    .init(
        name: "timestamp without zone", json: body(timestamp: #""2024-05-31T15:54:32.204""#), field: "timestamp",
        reason: "must end with a zone: 'Z' or an offset such as '+02:00'"),
    .init(
        name: "date-only timestamp", json: body(timestamp: #""2024-05-31""#), field: "timestamp",
        reason: "must be an RFC 3339 date-time with a zone, such as \"2024-05-31T15:54:32.204Z\""),
    .init(
        name: "timestamp with 10 fraction digits", json: body(timestamp: #""2024-05-31T15:54:32.2040000000Z""#),
        field: "timestamp", reason: "must have at most 9 fraction digits"),
    .init(
        name: "timestamp with empty fraction", json: body(timestamp: #""2024-05-31T15:54:32.Z""#), field: "timestamp",
        reason: "must be an RFC 3339 date-time with a zone, such as \"2024-05-31T15:54:32.204Z\""),
    .init(
        name: "timestamp on a day that does not exist", json: body(timestamp: #""2023-02-29T00:00:00Z""#),
        field: "timestamp", reason: "is not a valid calendar date and time"),
    .init(
        name: "timestamp at hour 24", json: body(timestamp: #""2024-05-31T24:00:00Z""#), field: "timestamp",
        reason: "is not a valid calendar date and time"),
    .init(
        name: "timestamp with an offset of 24 hours", json: body(timestamp: #""2024-05-31T12:00:00+24:00""#),
        field: "timestamp", reason: "is not a valid calendar date and time"),
    .init(
        name: "timestamp with a short offset", json: body(timestamp: #""2024-05-31T12:00:00+0200""#),
        field: "timestamp", reason: "must be an RFC 3339 date-time with a zone, such as \"2024-05-31T15:54:32.204Z\""),
    .init(
        name: "timestamp with a leap second", json: body(timestamp: #""2016-12-31T23:59:60Z""#), field: "timestamp",
        reason: "leap seconds (second 60) are not supported"),
    .init(
        name: "timestamp as epoch number", json: body(timestamp: "1717170872204"), field: "timestamp",
        reason: "must be a string"),
    .init(
        name: "timestamp before year 0000 in UTC", json: body(timestamp: #""0000-01-01T00:00:00+01:00""#),
        field: "timestamp", reason: "must fall between the years 0000 and 9999 in UTC"),
    .init(
        name: "price negative zero as a number", json: body(price: "-0.0"), field: "price",
        reason: "must not be negative"),
    .init(
        name: "price negative zero as a string", json: body(price: #""-0.00""#), field: "price",
        reason: "must not be negative"),
    .init(name: "price minus zero", json: body(price: "-0"), field: "price", reason: "must not be negative"),
    .init(
        name: "timestamp before 1970", json: body(timestamp: #""1969-12-31T23:59:59.999Z""#), field: "timestamp",
        reason: "must not be before 1970-01-01T00:00:00Z"),
    .init(
        name: "timestamp a millisecond past 24 hours ahead", json: body(timestamp: #""2024-06-02T00:00:00.001Z""#),
        field: "timestamp",
        reason: "must not be more than 24 hours after the server's time (2024-06-01T00:00:00.000Z)"),
    .init(
        name: "timestamp in the year 9999", json: body(timestamp: #""9999-12-31T23:59:59Z""#), field: "timestamp",
        reason: "must not be more than 24 hours after the server's time (2024-06-01T00:00:00.000Z)"),
    .init(
        name: "duplicate price member", json: body(extra: #""price":"0.01""#), field: "price",
        reason: "must appear only once"),
    .init(name: "array body", json: "[1,2]", field: "body", reason: "must be a JSON object"),
    .init(name: "string body", json: "\"joe\"", field: "body", reason: "must be a JSON object"),
]

@Suite struct PurchaseValidationTests {
    @Test(arguments: accepted)
    func accepts(_ c: AcceptedCase) throws {
        let purchase = try decode(c.json)
        #expect(purchase.username == c.username)
        #expect(purchase.userid == c.userid)
        #expect(purchase.price.description == c.price)
        #expect(purchase.timestamp.description == c.timestamp)
    }

    @Test(arguments: rejected)
    func rejects(_ c: RejectedCase) {
        #expect(throws: PurchaseDecodingError.invalid([FieldError(field: c.field, reason: c.reason)])) {
            try decode(c.json)
        }
    }

    @Test(arguments: [
        "", "{", "{\"username\":}", "{\"price\": 01}", "{\"price\": 1.}", "{\"price\": .5}", "{\"price\": NaN}",
        "{\"price\": -}", "{\"a\":1,}", "{\"a\" 1}", "{} {}", "{\"a\":\"\u{1}\"}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\\ud800\"}", "{'a':1}", "{\"a\":tru}", "\u{FEFF}{}",
        String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
    ])
    func malformedJSONIsNotAPurchase(_ json: String) {
        #expect {
            try decode(json)
        } throws: { error in
            guard case .malformedJSON = error as? PurchaseDecodingError else { return false }
            return true
        }
    }

    @Test func invalidUTF8IsMalformed() {
        var bytes = Array(body().utf8)
        bytes.insert(0xFF, at: 14)
        #expect {
            try Purchase(json: bytes, receivedAt: receivedAt)
        } throws: { error in
            guard case .malformedJSON = error as? PurchaseDecodingError else { return false }
            return true
        }
    }

    @Test func everyBrokenFieldIsReportedOnceInFieldOrder() {
        #expect(
            throws: PurchaseDecodingError.invalid([
                FieldError(field: "username", reason: "must not be empty"),
                FieldError(field: "userid", reason: "is required"),
                FieldError(field: "price", reason: "must not be negative"),
                FieldError(field: "timestamp", reason: "must end with a zone: 'Z' or an offset such as '+02:00'"),
            ])
        ) {
            try decode(body(username: #""""#, userid: nil, price: "-5", timestamp: #""2024-05-31T15:54:32""#))
        }
    }

    @Test func theFutureWindowIsTheConfiguredOne() throws {
        let hour = TimestampRule(maximumFuture: .seconds(3600))
        let json = Array(body(timestamp: #""2024-06-01T01:00:00.001Z""#).utf8)
        #expect(
            throws: PurchaseDecodingError.invalid([
                FieldError(
                    field: "timestamp",
                    reason: "must not be more than 1 hour after the server's time (2024-06-01T00:00:00.000Z)")
            ])
        ) { try Purchase(json: json, receivedAt: receivedAt, timestampRule: hour) }
        let week = TimestampRule(maximumFuture: TimestampRule.largestMaximumFuture)
        let purchase = try Purchase(json: json, receivedAt: receivedAt, timestampRule: week)
        #expect(purchase.timestamp.description == "2024-06-01T01:00:00.001Z")
        // Without a timestamp the receive time is used and always fits.
        let none = try Purchase(
            json: Array(body(timestamp: nil).utf8), receivedAt: receivedAt,
            timestampRule: TimestampRule(maximumFuture: .zero))
        #expect(none.timestamp == receivedAt)
    }

    @Test func nestingIsBoundedSoDeepInputCannotExhaustTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: PurchaseDecodingError.self) { try decode(body(extra: "\"x\":" + deep)) }
    }

    @Test(
        arguments: [
            ("0.01", 1), ("0.10", 10), ("1195.3", 119_530), ("1195.30", 119_530), ("100", 10_000),
            ("9999999999.99", 999_999_999_999),
        ] as [(String, Int64)])
    func priceNumberAndStringFormsGiveTheSameExactAmount(_ text: String, hundredths: Int64) throws {
        #expect(try decode(body(price: text)).price.hundredths == hundredths)
        #expect(try decode(body(price: "\"\(text)\"")).price.hundredths == hundredths)
    }
}
