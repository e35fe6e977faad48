import Foundation
import PurchaseDomain
import PurchaseWire
import Testing

@Suite struct PurchaseEventTests {
    let purchase = try! Purchase(
        username: "Zoë \"quoted\" / 🛒",
        userid: "005",
        price: Price(hundredths: 119_530),
        timestamp: Timestamp(millisecondsSinceEpoch: 1_717_170_872_204)
    )

    @Test func kafkaValueHasTheContractFieldsAndRoundTrips() throws {
        let id = UUID(uuidString: "6F9619FF-8B86-D011-B42D-00C04FC964FF")!
        let event = PurchaseEvent(
            purchaseId: id, purchase: purchase, receivedAt: Timestamp(millisecondsSinceEpoch: 1_717_170_873_000))
        let value = event.kafkaValue()
        let object = try #require(JSONSerialization.jsonObject(with: Data(value)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "schemaVersion", "purchaseId", "username", "userid", "price", "timestamp", "receivedAt",
            ])
        #expect(object["schemaVersion"] as? Int == 1)
        #expect(object["purchaseId"] as? String == "6f9619ff-8b86-d011-b42d-00c04fc964ff")
        #expect(object["price"] as? String == "1195.30")
        #expect(object["timestamp"] as? String == "2024-05-31T15:54:32.204Z")
        #expect(object["receivedAt"] as? String == "2024-05-31T15:54:33.000Z")
        #expect(try PurchaseEvent(kafkaValue: value) == event)
        #expect(event.kafkaKey == Array("005".utf8))
    }

    @Test(arguments: [
        ("", "not a purchase event: malformed JSON"),
        (
            #"{"schemaVersion":2,"purchaseId":"6f9619ff-8b86-d011-b42d-00c04fc964ff","username":"a","userid":"b","price":"1.00","timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"2024-05-31T15:54:32.204Z"}"#,
            "unsupported schemaVersion 2"
        ),
        (
            #"{"schemaVersion":1,"purchaseId":"nope","username":"a","userid":"b","price":"1.00","timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"2024-05-31T15:54:32.204Z"}"#,
            "purchaseId is not a UUID"
        ),
        (
            #"{"schemaVersion":1,"purchaseId":"6f9619ff-8b86-d011-b42d-00c04fc964ff","username":"","userid":"b","price":"1.00","timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"2024-05-31T15:54:32.204Z"}"#,
            "username must not be empty"
        ),
        (
            #"{"schemaVersion":1,"purchaseId":"6f9619ff-8b86-d011-b42d-00c04fc964ff","username":"a","userid":"b","timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"2024-05-31T15:54:32.204Z"}"#,
            "not a purchase event: missing price"
        ),
        (
            #"{"schemaVersion":1,"purchaseId":"6f9619ff-8b86-d011-b42d-00c04fc964ff","username":"a","userid":"b","price":1.5,"timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"2024-05-31T15:54:32.204Z"}"#,
            "not a purchase event: wrong type for price"
        ),
        (
            #"{"schemaVersion":1,"purchaseId":"6f9619ff-8b86-d011-b42d-00c04fc964ff","username":"a","userid":"b","price":"1.001","timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"2024-05-31T15:54:32.204Z"}"#,
            "price must have at most 2 fraction digits"
        ),
        (
            #"{"schemaVersion":1,"purchaseId":"6f9619ff-8b86-d011-b42d-00c04fc964ff","username":"a","userid":"b","price":"1.00","timestamp":"2024-05-31T15:54:32.204Z","receivedAt":"yesterday"}"#,
            #"receivedAt must be an RFC 3339 date-time with a zone, such as "2024-05-31T15:54:32.204Z""#
        ),
    ])
    func undecodableValuesSayWhy(_ json: String, reason: String) {
        let error = #expect(throws: PurchaseEventDecodingError.self) {
            try PurchaseEvent(kafkaValue: Array(json.utf8))
        }
        #expect(error?.description == reason)
    }

    /// The hand-written value is byte for byte what `JSONEncoder` wrote before it (sorted keys,
    /// slashes unescaped), for names with quotes, backslashes, slashes, non-ASCII and emoji.
    @Test(arguments: [
        ("joe", "005"), (#"a "quoted" name"#, #"back\slash"#), ("a/b/../c", "ünïcødé-ідентифікатор"),
        ("😀 emoji 漢字", "id with spaces"), ("x", String(repeating: "y", count: 128)),
    ])
    func kafkaValueIsTheBytesJSONEncoderWrote(username: String, userid: String) throws {
        struct Wire: Encodable {
            var idempotencyFingerprint: String?
            var schemaVersion: Int
            var purchaseId: String
            var username: String
            var userid: String
            var price: String
            var timestamp: String
            var receivedAt: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for (hundredths, milliseconds, keyed) in [
            (0, 0, false), (119_530, 1_717_170_872_204, true), (999_999_999_999, 253_402_300_798_000, false),
        ] {
            let purchase = try Purchase(
                username: username, userid: userid, price: Price(hundredths: Int64(hundredths)),
                timestamp: Timestamp(millisecondsSinceEpoch: Int64(milliseconds)))
            let event = PurchaseEvent(
                purchaseId: .randomPurchaseID(), purchase: purchase,
                receivedAt: Timestamp(millisecondsSinceEpoch: Int64(milliseconds) + 7),
                idempotencyFingerprint: keyed
                    ? PurchaseRequest(purchase: purchase, timestampGiven: true).fingerprint : nil)
            let expected = try encoder.encode(
                Wire(
                    idempotencyFingerprint: event.idempotencyFingerprint?.text,
                    schemaVersion: 1, purchaseId: event.purchaseId.uuidString.lowercased(), username: username,
                    userid: userid, price: event.purchase.price.description,
                    timestamp: event.purchase.timestamp.description, receivedAt: event.receivedAt.description))
            #expect(event.kafkaValue() == Array(expected), "\(String(decoding: event.kafkaValue(), as: UTF8.self))")
            #expect(try PurchaseEvent(kafkaValue: event.kafkaValue()) == event)
        }
    }

    /// Two requests under one key are the same request when the client sent the same purchase:
    /// the same names, price, and timestamp or none (the server's receive time is not the client's).
    @Test func theFingerprintIsWhatTheClientSent() throws {
        let at = Timestamp(millisecondsSinceEpoch: 1_717_170_872_204)
        func request(_ price: Int64 = 100, timestamp: Timestamp? = at, username: String = "joe") throws
            -> PurchaseRequest
        {
            PurchaseRequest(
                purchase: try Purchase(
                    username: username, userid: "005", price: Price(hundredths: price), timestamp: timestamp ?? at),
                timestampGiven: timestamp != nil)
        }
        #expect(try request().fingerprint == request().fingerprint)
        #expect(try request().fingerprint.text.count == 64)
        #expect(try request().fingerprint != request(101).fingerprint)
        #expect(try request().fingerprint != request(timestamp: nil).fingerprint)
        #expect(try request().fingerprint != request(username: "cafe\u{301}").fingerprint)
        #expect(try request(username: "caf\u{E9}").fingerprint != request(username: "cafe\u{301}").fingerprint)
        #expect(
            try request(timestamp: nil).fingerprint
                == PurchaseRequest(
                    purchase: try Purchase(
                        username: "joe", userid: "005", price: Price(hundredths: 100),
                        timestamp: Timestamp(millisecondsSinceEpoch: 5)),
                    timestampGiven: false
                ).fingerprint, "without a timestamp, the server's receive time is not part of it")
        #expect(IdempotencyFingerprint(text: try request().fingerprint.text) == (try request().fingerprint))
        #expect(IdempotencyFingerprint(text: String(repeating: "A", count: 64)) == nil)
    }

    @Test func anEventWithAMalformedFingerprintIsNotAPurchaseEvent() throws {
        let value =
            #"{"idempotencyFingerprint":"xyz","price":"1.00","purchaseId":"6f1c6b1e-5a7e-4f1e-9a2b-1c2d3e4f5a6b","receivedAt":"2024-05-31T15:54:32.204Z","schemaVersion":1,"timestamp":"2024-05-31T15:54:32.204Z","userid":"005","username":"joe"}"#
        let error = #expect(throws: PurchaseEventDecodingError.self) {
            try PurchaseEvent(kafkaValue: Array(value.utf8))
        }
        #expect(error?.description == "idempotencyFingerprint is not 64 lowercase hex digits")
    }

    @Test func aPurchaseIdIsWrittenAsFoundationWritesItInLowerCase() {
        for _ in 0..<1000 {
            let id = UUID()
            #expect(id.lowercasedString == id.uuidString.lowercased())
        }
        let fixed = UUID(uuidString: "39704141-781A-495F-A038-3A37BE9CCCDB")!
        #expect(fixed.lowercasedString == "39704141-781a-495f-a038-3a37be9cccdb")
    }

    @Test func idempotencyKeyGivesTheSamePurchaseIdForTheSameUserOnly() throws {
        let key = try IdempotencyKey("order-2024-05-31-0001")
        let first = UUID.purchaseID(userid: "005", idempotencyKey: key)
        #expect(UUID.purchaseID(userid: "005", idempotencyKey: key) == first)
        #expect(UUID.purchaseID(userid: "006", idempotencyKey: key) != first)
        #expect(UUID.purchaseID(userid: "005", idempotencyKey: try IdempotencyKey("order-2024-05-31-0002")) != first)
        // "00" + "5x" and "005" + "x" must not collide.
        #expect(
            UUID.purchaseID(userid: "00", idempotencyKey: try IdempotencyKey("5x"))
                != UUID.purchaseID(userid: "005", idempotencyKey: try IdempotencyKey("x"))
        )
        // A version 5 UUID, equal to Python's uuid5 of the same name, and stable across releases:
        // a changed value would store a retried purchase twice.
        let text = first.uuidString.lowercased()
        #expect(Array(text)[14] == "5")
        #expect("89ab".contains(Array(text)[19]))
        #expect(text == "eb7d71fa-ac87-58fc-a137-4248d72ae066")
    }

    @Test func randomPurchaseIdsAreVersion4AndDistinct() {
        let ids = (0..<1000).map { _ in UUID.randomPurchaseID() }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { Array($0.uuidString)[14] == "4" && "89AB".contains(Array($0.uuidString)[19]) })
        // Every one of the 122 random bits varies across a thousand ids; the six fixed ones do not.
        let varying = ids.reduce(into: [UInt8](repeating: 0, count: 16)) { varying, id in
            withUnsafeBytes(of: id.uuid) { bytes in
                for index in 0..<16 { varying[index] |= bytes[index] ^ withUnsafeBytes(of: ids[0].uuid) { $0[index] } }
            }
        }
        #expect(varying == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0xFF, 0x3F] + [UInt8](repeating: 0xFF, count: 7))
    }

    @Test(arguments: ["", " ", "has space", "tab\t", "é", String(repeating: "k", count: 256)])
    func badIdempotencyKeysAreRejected(_ key: String) {
        #expect(throws: PurchaseDecodingError.self) { try IdempotencyKey(key) }
    }

    @Test func longestIdempotencyKeyIsAccepted() throws {
        #expect(try IdempotencyKey(String(repeating: "k", count: 255)).value.count == 255)
    }
}

@Suite struct TimestampTests {
    @Test(arguments: [
        Int64(0), 1, 999, 86_399_999, 951_782_400_000, 1_717_170_872_204, -1, -86_400_001,
        -62_167_219_200_000, 253_402_300_799_999,
    ])
    func formattingThenParsingIsExact(_ ms: Int64) throws {
        let timestamp = Timestamp(millisecondsSinceEpoch: ms)
        #expect(try Timestamp(rfc3339: timestamp.description) == timestamp)
    }

    @Test func formatsAsUTCWithMilliseconds() {
        #expect(Timestamp(millisecondsSinceEpoch: 0).description == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(millisecondsSinceEpoch: 951_782_400_000).description == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp(millisecondsSinceEpoch: -1).description == "1969-12-31T23:59:59.999Z")
    }

    @Test func everyDayOfFourHundredYearsRoundTrips() throws {
        // One Gregorian cycle exercises every leap-year rule of the calendar arithmetic.
        let start: Int64 = 946_684_800_000  // 2000-01-01
        for day in stride(from: Int64(0), to: 146_097, by: 1) {
            let timestamp = Timestamp(millisecondsSinceEpoch: start + day * 86_400_000 + 43_200_123)
            #expect(try Timestamp(rfc3339: timestamp.description) == timestamp)
        }
    }
}
