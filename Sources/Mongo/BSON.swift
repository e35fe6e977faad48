internal import CMongoC

/// A BSON value, as much of BSON as the shop stores and queries.
public indirect enum BSONValue: Hashable, Sendable {
    case string(String)
    case int32(Int32)
    case int64(Int64)
    case double(Double)
    case bool(Bool)
    case null
    /// A UTC datetime: milliseconds since the epoch.
    case date(Int64)
    /// An IEEE 754-2008 decimal128, in libbson's canonical text (e.g. `1195.30`).
    case decimal128(String)
    case document(BSONDocument)
    case array([BSONValue])
}

/// An ordered BSON document. Key order matters to MongoDB (sort and index specifications).
public struct BSONDocument: Hashable, Sendable, ExpressibleByDictionaryLiteral {
    public var elements: [(key: String, value: BSONValue)]

    public init(_ elements: [(key: String, value: BSONValue)] = []) {
        self.elements = elements
    }

    public init(dictionaryLiteral elements: (String, BSONValue)...) {
        self.elements = elements.map { (key: $0.0, value: $0.1) }
    }

    /// The first value under `key`.
    public subscript(key: String) -> BSONValue? {
        elements.first { $0.key == key }?.value
    }

    /// Encodes the document and lends its fields to `body` in place, as
    /// ``MongoCollection/find(_:sort:projection:limit:maxTime:reading:)`` lends each document it
    /// reads.
    /// - Throws: ``MongoError`` if a value cannot be encoded (an invalid decimal128 text).
    public func withElements<T>(_ body: (borrowing BSONElements) -> T) throws(MongoError) -> T {
        let bson = try OwnedBSON(self)
        return withIterator { iterator in body(BSONElements(bson: bson.pointer, iterator: iterator)) }
    }

    public static func == (lhs: BSONDocument, rhs: BSONDocument) -> Bool {
        lhs.elements.count == rhs.elements.count
            && zip(lhs.elements, rhs.elements).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for (key, value) in elements {
            hasher.combine(key)
            hasher.combine(value)
        }
    }
}

/// A heap-allocated `bson_t` (libbson requires 128-byte alignment, which only `bson_new` and
/// friends guarantee), destroyed with its owner.
final class OwnedBSON {
    let pointer: OpaquePointer
    private let isReply: Bool

    /// Takes ownership of a `bson_t` from `bson_new`/`bson_new_from_data`/`bson_copy`.
    init(taking pointer: OpaquePointer) {
        self.pointer = pointer
        self.isReply = false
    }

    /// Storage for a reply libmongoc initialises itself. Passing a `bson_new` document there
    /// would leak it: libmongoc's `bson_init` marks it static, so `bson_destroy` no longer frees it.
    private init(reply pointer: OpaquePointer) {
        self.pointer = pointer
        self.isReply = true
    }

    static func reply() -> OwnedBSON {
        OwnedBSON(reply: shop_bson_reply_new()!)
    }

    /// Encodes `document` into a new `bson_t`.
    /// - Throws: ``MongoError`` if a value cannot be encoded (an invalid decimal128 text).
    convenience init(_ document: BSONDocument) throws(MongoError) {
        self.init(taking: bson_new())
        try Self.append(document, to: pointer)
    }

    /// An empty document to append to.
    convenience init() {
        self.init(taking: bson_new())
    }

    deinit {
        if isReply {
            shop_bson_reply_free(pointer)
        } else {
            bson_destroy(pointer)
        }
    }

    var document: BSONDocument {
        BSONDocument(bson: pointer)
    }

    private static func append(_ document: BSONDocument, to bson: OpaquePointer) throws(MongoError) {
        for (key, value) in document.elements {
            try append(value, key: key, to: bson)
        }
    }

    private static func append(_ value: BSONValue, key: String, to bson: OpaquePointer) throws(MongoError) {
        let ok: Bool
        switch value {
        case .string(let string):
            ok = string.withCString { bson_append_utf8(bson, key, -1, $0, Int32(string.utf8.count)) }
        case .int32(let number): ok = bson_append_int32(bson, key, -1, number)
        case .int64(let number): ok = bson_append_int64(bson, key, -1, number)
        case .double(let number): ok = bson_append_double(bson, key, -1, number)
        case .bool(let flag): ok = bson_append_bool(bson, key, -1, flag)
        case .null: ok = bson_append_null(bson, key, -1)
        case .date(let milliseconds): ok = bson_append_date_time(bson, key, -1, milliseconds)
        case .decimal128(let text):
            var decimal = bson_decimal128_t()
            guard bson_decimal128_from_string(text, &decimal) else {
                throw MongoError(kind: .invalidArgument, message: "\"\(text)\" is not a decimal128 (field \(key))")
            }
            ok = bson_append_decimal128(bson, key, -1, &decimal)
        case .document(let child):
            let nested = try OwnedBSON(child)
            ok = bson_append_document(bson, key, -1, nested.pointer)
        case .array(let values):
            let nested = OwnedBSON()
            for (index, element) in values.enumerated() {
                try append(element, key: String(index), to: nested.pointer)
            }
            ok = bson_append_array(bson, key, -1, nested.pointer)
        }
        // libbson fails an append only when the document would exceed its size limit.
        guard ok else { throw MongoError(kind: .invalidArgument, message: "document too large at field \(key)") }
    }
}

extension BSONDocument {
    /// Decodes a `bson_t` the caller keeps owning.
    init(bson: OpaquePointer) {
        self.init()
        withIterator { iterator in
            guard bson_iter_init(iterator, bson) else { return }
            elements = Self.decodeElements(iterator)
        }
    }

    private static func decodeElements(_ iterator: OpaquePointer) -> [(key: String, value: BSONValue)] {
        var elements: [(key: String, value: BSONValue)] = []
        while bson_iter_next(iterator) {
            let key = String(cString: bson_iter_key(iterator))
            if let value = decodeValue(iterator) { elements.append((key, value)) }
        }
        return elements
    }

    /// The value under the iterator; `nil` for BSON types the shop never stores.
    private static func decodeValue(_ iterator: OpaquePointer) -> BSONValue? {
        switch bson_iter_type(iterator) {
        case BSON_TYPE_UTF8:
            var length: UInt32 = 0
            guard let text = bson_iter_utf8(iterator, &length) else { return nil }
            return .string(
                String(decoding: UnsafeRawBufferPointer(start: text, count: Int(length)), as: UTF8.self)
            )
        case BSON_TYPE_INT32: return .int32(bson_iter_int32(iterator))
        case BSON_TYPE_INT64: return .int64(bson_iter_int64(iterator))
        case BSON_TYPE_DOUBLE: return .double(bson_iter_double(iterator))
        case BSON_TYPE_BOOL: return .bool(bson_iter_bool(iterator))
        case BSON_TYPE_NULL: return .null
        case BSON_TYPE_DATE_TIME: return .date(bson_iter_date_time(iterator))
        case BSON_TYPE_DECIMAL128:
            var decimal = bson_decimal128_t()
            guard bson_iter_decimal128(iterator, &decimal) else { return nil }
            var text = [CChar](repeating: 0, count: Int(BSON_DECIMAL128_STRING))
            bson_decimal128_to_string(&decimal, &text)
            return .decimal128(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case BSON_TYPE_DOCUMENT, BSON_TYPE_ARRAY:
            let isArray = bson_iter_type(iterator) == BSON_TYPE_ARRAY
            return withIterator { child in
                guard bson_iter_recurse(iterator, child) else { return nil }
                let elements = decodeElements(child)
                return isArray ? .array(elements.map(\.value)) : .document(BSONDocument(elements))
            }
        default:
            return nil
        }
    }
}

/// Runs `body` with a heap `bson_iter_t` at the 128-byte alignment libbson declares for it.
private func withIterator<T>(_ body: (OpaquePointer) -> T) -> T {
    let iterator = shop_bson_iter_new()!
    defer { shop_bson_iter_free(iterator) }
    return body(iterator)
}
