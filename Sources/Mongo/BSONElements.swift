internal import CMongoC

/// The fields of a document libmongoc lends for the length of one call, read in place: no
/// ``BSONDocument``, no `String` per key or value (a page of 100 purchases read into documents
/// made about 20 heap objects per document). Valid only inside the closure it is given to.
public struct BSONElements: ~Copyable {
    let bson: OpaquePointer
    let iterator: OpaquePointer

    /// Calls `body` with each field's key (UTF-8, without its NUL) and value, in order.
    public func readFields(_ body: (_ key: UnsafeRawBufferPointer, _ value: BSONBorrowedValue) -> Void) {
        guard bson_iter_init(iterator, bson) else { return }
        while bson_iter_next(iterator) {
            let key = bson_iter_key(iterator)!
            body(UnsafeRawBufferPointer(start: key, count: strlen(key)), Self.value(iterator))
        }
    }

    /// The whole document, copied: for the rare document that is not what the caller expects.
    public var document: BSONDocument { BSONDocument(bson: bson) }

    private static func value(_ iterator: OpaquePointer) -> BSONBorrowedValue {
        switch bson_iter_type(iterator) {
        case BSON_TYPE_UTF8:
            var length: UInt32 = 0
            guard let text = bson_iter_utf8(iterator, &length) else { return .unsupported }
            return .string(UnsafeRawBufferPointer(start: text, count: Int(length)))
        case BSON_TYPE_DATE_TIME: return .date(bson_iter_date_time(iterator))
        case BSON_TYPE_DECIMAL128:
            var decimal = bson_decimal128_t()
            guard bson_iter_decimal128(iterator, &decimal) else { return .unsupported }
            return .decimal128(BSONDecimal128(low: decimal.low, high: decimal.high))
        case BSON_TYPE_INT32: return .int32(bson_iter_int32(iterator))
        case BSON_TYPE_INT64: return .int64(bson_iter_int64(iterator))
        case BSON_TYPE_DOUBLE, BSON_TYPE_BOOL, BSON_TYPE_NULL, BSON_TYPE_DOCUMENT, BSON_TYPE_ARRAY: return .other
        default: return .unsupported
        }
    }
}

/// A value of ``BSONElements``: what the shop reads in place; the other types ``BSONValue`` has
/// are `.other`, and the types it does not have (``BSONDocument`` leaves them out) `.unsupported`.
public enum BSONBorrowedValue {
    /// UTF-8 bytes as stored (libbson checked the length, not the encoding), valid for the call.
    case string(UnsafeRawBufferPointer)
    /// A UTC datetime: milliseconds since the epoch.
    case date(Int64)
    case decimal128(BSONDecimal128)
    case int32(Int32)
    case int64(Int64)
    case other
    case unsupported
}

/// An IEEE 754-2008 decimal128 in the binary integer decimal encoding BSON uses.
public struct BSONDecimal128: Hashable, Sendable {
    public let low: UInt64
    public let high: UInt64

    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// `(-1)^negative × coefficient × 10^exponent` when the value is finite and its coefficient
    /// fits 64 bits (any amount of money does); `nil` for infinities, NaNs and larger coefficients.
    public var finite: (negative: Bool, coefficient: UInt64, exponent: Int)? {
        let negative = high >> 63 == 1
        let combination = (high >> 58) & 0x1F
        guard combination < 0x1E else { return nil }  // infinity or NaN
        if (high >> 61) & 0b11 == 0b11 {
            // The second form's coefficient is at least 2^113, above the largest allowed
            // (10^34 - 1): a non-canonical encoding of zero.
            let exponent = Int((high >> 47) & 0x3FFF) - 6176
            return (negative, 0, exponent)
        }
        let exponent = Int((high >> 49) & 0x3FFF) - 6176
        guard high & 0x1_FFFF_FFFF_FFFF == 0 else { return nil }
        return (negative, low, exponent)
    }

    /// libbson's canonical text (`1195.30`, `1.19530E+3`).
    public var text: String {
        var decimal = bson_decimal128_t()
        decimal.low = low
        decimal.high = high
        var text = [CChar](repeating: 0, count: Int(BSON_DECIMAL128_STRING))
        bson_decimal128_to_string(&decimal, &text)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
