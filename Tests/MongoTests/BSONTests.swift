import Events
import Foundation
import Testing

@testable import Mongo

@Suite struct BSONTests {
    @Test func everyValueKindRoundTripsThroughLibbson() throws {
        let document: BSONDocument = [
            "string": .string("Zoë 🛒 \u{0}inside"),
            "int32": .int32(-7),
            "int64": .int64(.max),
            "double": .double(0.5),
            "bool": .bool(true),
            "null": .null,
            "date": .date(-62_167_219_200_000),
            "decimal": .decimal128("92233720368547758.07"),
            "nested": .document(["a": .array([.int32(1), .string("two"), .document(["b": .null])])]),
            "empty": .array([]),
        ]
        let decoded = try OwnedBSON(document).document
        #expect(decoded == document)
        #expect(decoded.elements.map(\.key) == document.elements.map(\.key), "order is kept")
    }

    @Test func anInvalidDecimalIsRejectedBeforeAnythingIsSent() {
        let error = #expect(throws: MongoError.self) { try OwnedBSON(["price": .decimal128("12,5")]) }
        #expect(error?.kind == .invalidArgument)
    }

    @Test func aStoredPurchaseMapsToTheContractDocumentAndBack() throws {
        let purchase = storedPurchase(0xabc)
        let document = purchase.document
        #expect(
            document.elements.map(\.key) == [
                "_id", "username", "userid", "price", "timestamp", "receivedAt", "partition", "offset",
            ])
        #expect(document["_id"] == .string("00000000-0000-4000-8000-000000000abc"))
        #expect(document["price"] == .decimal128("1195.30"))
        #expect(document["timestamp"] == .date(1_717_170_872_204))
        #expect(try StoredPurchase(document: OwnedBSON(document).document) == purchase)
    }

    @Test(arguments: [
        ("price", BSONValue.decimal128("1.005")), ("price", .double(1.5)), ("price", .decimal128("-1.00")),
        ("price", .decimal128("NaN")), ("timestamp", .string("2024-05-31T15:54:32Z")), ("_id", .string("x")),
        ("username", .string("")), ("partition", .int64(1)),
    ])
    func aDocumentThatIsNotAPurchaseIsRejectedNamingTheField(_ field: String, _ value: BSONValue) {
        var document = storedPurchase(1).document
        document.elements = document.elements.map { $0.key == field ? ($0.key, value) : $0 }
        let error = #expect(throws: MongoError.self) { try StoredPurchase(document: document) }
        #expect(error?.message.contains(field) == true || error?.message.contains("purchase") == true)
    }

    @Test func decimal128InExponentFormReadsExactly() throws {
        #expect(try Price(exactDecimal: "1.19530E+3").hundredths == 119_530)
        #expect(try Price(exactDecimal: "0E-6176").hundredths == 0)
        #expect(throws: Price.ParseError.self) { try Price(exactDecimal: "1E-3") }
        #expect(throws: Price.ParseError.self) { try Price(exactDecimal: "Infinity") }
    }
}
