/// An exact, non-negative amount of money with two fraction digits, held as an integer
/// number of hundredths so that no binary floating point is ever involved.
public struct Price: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The amount in hundredths (cents): `1195.30` is `119530`.
    public let hundredths: Int64

    /// The largest representable price, `92233720368547758.07`.
    public static let maximum = Price(hundredths: .max)

    public init(hundredths: Int64) {
        precondition(hundredths >= 0, "a price is never negative")
        self.hundredths = hundredths
    }

    /// Why a text is not a price; the text is the `reason` users see.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public let description: String
        static let notADecimal = ParseError(description: "must be a decimal amount such as \"1195.30\"")
        static let negative = ParseError(description: "must not be negative")
        static let tooManyFractionDigits = ParseError(description: "must have at most 2 fraction digits")
        static let tooLarge = ParseError(description: "must be at most \(Price.maximum)")
    }

    /// Parses the plain decimal form used in strings: digits, optionally `.` and more digits,
    /// e.g. `1195.30`, `0.5`, `12`. Trailing zeros beyond two fraction digits are accepted
    /// because they do not change the amount (`1.500` is `1.50`).
    public init(parsing text: Substring) throws(ParseError) {
        let digits = text.utf8[...]
        // Any minus sign is refused, "-0.00" included: a client that sends one has a bug or a
        // refund in mind, and a shop takes neither as a purchase.
        if digits.first == UInt8(ascii: "-") {
            throw Self.isPlainDecimal(digits.dropFirst()) ? .negative : .notADecimal
        }
        guard Self.isPlainDecimal(digits) else { throw .notADecimal }
        let point = digits.firstIndex(of: UInt8(ascii: "."))
        let integer = digits[..<(point ?? digits.endIndex)]
        let fraction = point.map { digits[digits.index(after: $0)...] } ?? digits[digits.endIndex...]
        self = try Self.make(integer: integer, fraction: fraction, exponent: 0)
    }

    /// Parses an exact decimal in plain or exponent form (`1195.30`, `1.19530E+3`), as JSON
    /// numbers and Decimal128's canonical text write it.
    public init(exactDecimal text: String) throws(ParseError) {
        guard Self.isDecimalNumber(text.utf8[...]) else { throw .notADecimal }
        try self.init(jsonNumber: text)
    }

    /// `-?digits(.digits)?([eE][+-]?digits)?`, leading zeros allowed.
    private static func isDecimalNumber(_ utf8: Substring.UTF8View) -> Bool {
        var rest = utf8
        if rest.first == UInt8(ascii: "-") { rest = rest.dropFirst() }
        let exponentMarker = rest.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        guard isPlainDecimal(rest[..<(exponentMarker ?? rest.endIndex)]) else { return false }
        guard let exponentMarker else { return true }
        var exponent = rest[rest.index(after: exponentMarker)...]
        if exponent.first == UInt8(ascii: "+") || exponent.first == UInt8(ascii: "-") {
            exponent = exponent.dropFirst()
        }
        return !exponent.isEmpty && exponent.allSatisfy(isDigit)
    }

    /// Parses a JSON number exactly as written, including exponent forms such as `1.1953e3`.
    /// `text` must already be a syntactically valid JSON number. A minus sign is refused, on
    /// zero too (`-0`, `-0.0`).
    package init(jsonNumber text: String) throws(ParseError) {
        var utf8 = Substring(text).utf8[...]
        let negative = utf8.first == UInt8(ascii: "-")
        if negative { utf8 = utf8.dropFirst() }
        let exponentMarker = utf8.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        let mantissa = utf8[..<(exponentMarker ?? utf8.endIndex)]
        var exponent = 0
        if let marker = exponentMarker {
            var exponentDigits = utf8[utf8.index(after: marker)...]
            var sign = 1
            if exponentDigits.first == UInt8(ascii: "-") || exponentDigits.first == UInt8(ascii: "+") {
                sign = exponentDigits.first == UInt8(ascii: "-") ? -1 : 1
                exponentDigits = exponentDigits.dropFirst()
            }
            for digit in exponentDigits {
                // Saturate: any exponent this large already decides the outcome.
                exponent = min(exponent * 10 + Int(digit - UInt8(ascii: "0")), 1_000_000)
            }
            exponent *= sign
        }
        let point = mantissa.firstIndex(of: UInt8(ascii: "."))
        let integer = mantissa[..<(point ?? mantissa.endIndex)]
        let fraction = point.map { mantissa[mantissa.index(after: $0)...] } ?? mantissa[mantissa.endIndex...]
        if negative { throw .negative }
        self = try Self.make(integer: integer, fraction: fraction, exponent: exponent)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isPlainDecimal(_ utf8: Substring.UTF8View.SubSequence) -> Bool {
        let point = utf8.firstIndex(of: UInt8(ascii: "."))
        let integer = utf8[..<(point ?? utf8.endIndex)]
        guard !integer.isEmpty, integer.allSatisfy(isDigit) else { return false }
        guard let point else { return true }
        let fraction = utf8[utf8.index(after: point)...]
        return !fraction.isEmpty && fraction.allSatisfy(isDigit)
    }

    /// Builds the value `integer.fraction × 10^exponent` in hundredths, exactly or not at all.
    /// Reads the digits where they are, without copying them: every purchase's price comes
    /// through here (arrays for the digits cost ~2,700 instructions a price; issue 31).
    private static func make(
        integer: Substring.UTF8View.SubSequence,
        fraction: Substring.UTF8View.SubSequence,
        exponent: Int
    ) throws(ParseError) -> Price {
        // value = significand × 10^scale, the significand's digits being integer ++ fraction
        // without its leading and trailing zeros.
        var significand = Significand()
        significand.find(in: integer)
        significand.find(in: fraction)
        guard significand.first >= 0 else { return Price(hundredths: 0) }
        let scale = exponent - fraction.count + (significand.position - significand.end)
        guard scale >= -2 else { throw .tooManyFractionDigits }
        // In hundredths the value has (end - first) + scale + 2 digits; Int64 holds 19.
        guard significand.end - significand.first + scale + 2 <= 19 else { throw .tooLarge }
        significand.position = 0
        try significand.accumulate(integer)
        try significand.accumulate(fraction)
        for _ in 0..<(scale + 2) { try significand.append(0) }
        return Price(hundredths: significand.value)
    }

    /// The significant digits of a run of decimal digits read in pieces (integer, then
    /// fraction): where they are, then their value. A struct rather than local functions over
    /// local variables, which a debug build would keep on the heap.
    private struct Significand {
        /// The position in the digits read so far.
        var position = 0
        /// The significant digits are at positions first..<end; first is -1 while none is seen.
        var first = -1
        var end = 0
        var value: Int64 = 0

        mutating func find(in digits: Substring.UTF8View.SubSequence) {
            for byte in digits {
                if byte != UInt8(ascii: "0") {
                    if first < 0 { first = position }
                    end = position + 1
                }
                position += 1
            }
        }

        mutating func accumulate(_ digits: Substring.UTF8View.SubSequence) throws(ParseError) {
            for byte in digits {
                if position >= first, position < end { try append(byte - UInt8(ascii: "0")) }
                position += 1
            }
        }

        mutating func append(_ digit: UInt8) throws(ParseError) {
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = product.addingReportingOverflow(Int64(digit))
            guard !overflow, !carry else { throw .tooLarge }
            value = sum
        }
    }

    /// The amount with exactly two fraction digits, e.g. `1195.30`.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendDescription(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends ``description``'s text, without building a string.
    public func appendDescription(to output: inout [UInt8]) {
        let cents = UInt8(UInt64(hundredths) % 100)
        (UInt64(hundredths) / 100).appendDecimal(to: &output)
        output.append(UInt8(ascii: "."))
        output.append(UInt8(ascii: "0") + cents / 10)
        output.append(UInt8(ascii: "0") + cents % 10)
    }

    public static func < (lhs: Price, rhs: Price) -> Bool {
        lhs.hundredths < rhs.hundredths
    }
}

extension UInt64 {
    /// Appends the number's decimal digits, without building a string: written backwards into
    /// 20 bytes on the stack (divisions by the constant 10) and appended at once.
    package func appendDecimal(to output: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt32) = (0, 0, 0)  // 20 bytes, no heap even in a debug build
        withUnsafeMutableBytes(of: &digits) { digits in
            var rest = self
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: digits[start...]))
        }
    }
}
