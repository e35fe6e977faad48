import Foundation

/// An instant with millisecond precision, as MongoDB stores dates: milliseconds since
/// 1970-01-01T00:00:00Z. Kept as an integer so parsing and formatting are exact.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let millisecondsSinceEpoch: Int64

    /// The earliest and latest instants that have a four-digit year in UTC.
    static let supportedRange: ClosedRange<Int64> = -62_167_219_200_000...253_402_300_799_999

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// The current instant of the system clock, rounded down to the millisecond.
    public static var now: Timestamp {
        Timestamp(millisecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// Seconds from `earlier` to this instant (negative when `earlier` is later).
    public func seconds(since earlier: Timestamp) -> Double {
        Double(millisecondsSinceEpoch - earlier.millisecondsSinceEpoch) / 1000
    }

    /// Why a text is not an RFC 3339 timestamp; the text is the `reason` users see.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public let description: String
        static let format = ParseError(
            description: "must be an RFC 3339 date-time with a zone, such as \"2024-05-31T15:54:32.204Z\""
        )
        static let missingZone = ParseError(
            description: "must end with a zone: 'Z' or an offset such as '+02:00'"
        )
        static let outOfRange = ParseError(description: "is not a valid calendar date and time")
        static let fractionTooLong = ParseError(description: "must have at most 9 fraction digits")
        static let leapSecond = ParseError(description: "leap seconds (second 60) are not supported")
        static let yearOutOfRange = ParseError(description: "must fall between the years 0000 and 9999 in UTC")
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339 section 5.6; `t` and `z` may
    /// be lower case). Fractions of up to nine digits are accepted and truncated to milliseconds.
    public init(rfc3339 text: String) throws(ParseError) {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var value = 0
            for i in range {
                guard b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(b[i] - UInt8(ascii: "0"))
            }
            return value
        }
        guard b.count >= 19,
            let year = number(0..<4), b[4] == UInt8(ascii: "-"),
            let month = number(5..<7), b[7] == UInt8(ascii: "-"),
            let day = number(8..<10), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            let hour = number(11..<13), b[13] == UInt8(ascii: ":"),
            let minute = number(14..<16), b[16] == UInt8(ascii: ":"),
            let second = number(17..<19)
        else { throw .format }
        var i = 19
        var millisecond = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") { i += 1 }
            let digits = i - start
            guard digits > 0 else { throw .format }
            guard digits <= 9 else { throw .fractionTooLong }
            // Truncate rather than round so an instant never moves into the next second.
            for k in 0..<3 {
                millisecond = millisecond * 10 + (k < digits ? Int(b[start + k] - UInt8(ascii: "0")) : 0)
            }
        }
        guard i < b.count else { throw .missingZone }
        var offsetMinutes = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let offsetHour = number(i + 1..<i + 3), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"),
                let offsetMinute = number(i + 4..<i + 6)
            else { throw .format }
            guard offsetHour <= 23, offsetMinute <= 59 else { throw .outOfRange }
            offsetMinutes = (offsetHour * 60 + offsetMinute) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            throw .missingZone
        }
        guard i == b.count else { throw .format }
        guard (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day),
            hour <= 23, minute <= 59
        else { throw .outOfRange }
        if second == 60 { throw .leapSecond }
        guard second <= 59 else { throw .outOfRange }

        let days = Int64(Self.daysFromCivil(year: year, month: month, day: day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        let milliseconds = seconds * 1000 + Int64(millisecond)
        guard Self.supportedRange.contains(milliseconds) else { throw .yearOutOfRange }
        self.millisecondsSinceEpoch = milliseconds
    }

    /// The instant in RFC 3339 UTC with milliseconds, e.g. `2024-05-31T15:54:32.204Z`.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendRFC3339(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends ``description``'s text, without building a string.
    public func appendRFC3339(to output: inout [UInt8]) {
        let (days, msOfDay) = millisecondsSinceEpoch.quotientAndRemainderFlooring(dividingBy: 86_400_000)
        let (year, month, day) = Self.civilFromDays(Int(days))
        let ms = Int(msOfDay)
        Self.appendDigits(year / 100, to: &output)
        Self.appendDigits(year % 100, to: &output)
        output.append(UInt8(ascii: "-"))
        Self.appendDigits(month, to: &output)
        output.append(UInt8(ascii: "-"))
        Self.appendDigits(day, to: &output)
        output.append(UInt8(ascii: "T"))
        Self.appendDigits(ms / 3_600_000, to: &output)
        output.append(UInt8(ascii: ":"))
        Self.appendDigits(ms / 60_000 % 60, to: &output)
        output.append(UInt8(ascii: ":"))
        Self.appendDigits(ms / 1000 % 60, to: &output)
        output.append(UInt8(ascii: "."))
        output.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: ms % 1000 / 100))
        Self.appendDigits(ms % 100, to: &output)
        output.append(UInt8(ascii: "Z"))
    }

    /// Two decimal digits of `value` (0...99); divisions by constants, which compile to multiplications.
    @inline(__always)
    private static func appendDigits(_ value: Int, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value / 10))
        output.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value % 10))
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days: exact proleptic Gregorian arithmetic.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Int64 {
    fileprivate func quotientAndRemainderFlooring(dividingBy divisor: Int64) -> (Int64, Int64) {
        var (quotient, remainder) = quotientAndRemainder(dividingBy: divisor)
        if remainder < 0 {
            quotient -= 1
            remainder += divisor
        }
        return (quotient, remainder)
    }
}
