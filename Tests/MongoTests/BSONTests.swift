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
}
