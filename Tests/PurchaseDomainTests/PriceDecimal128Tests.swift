import PurchaseDomain
import Testing

/// MongoDB answers Decimal128 prices in exponent form too; they read back exactly.
@Suite struct PriceDecimal128Tests {
    @Test func decimal128InExponentFormReadsExactly() throws {
        #expect(try Price(exactDecimal: "1.19530E+3").hundredths == 119_530)
        #expect(try Price(exactDecimal: "0E-6176").hundredths == 0)
        #expect(throws: Price.ParseError.self) { try Price(exactDecimal: "1E-3") }
        #expect(throws: Price.ParseError.self) { try Price(exactDecimal: "Infinity") }
    }
}
