/// A strict RFC 8259 reader for request bodies that keeps every number's exact text.
///
/// Foundation's `JSONDecoder` turns numbers into `Double` or a 38-digit `Decimal`, silently
/// rounding longer inputs, and reports an out-of-range number as a document error rather
/// than against its field. Money must never take that path, so purchases are read with this
/// reader, which hands the validator the number exactly as the client wrote it.
struct JSONReader {
    /// A value of the top-level object. Nested arrays and objects are fully checked for
    /// syntax but their contents are not kept: no field of a purchase is a container.
    enum Value: Equatable {
        case string(String)
        case number(String)
        case bool(Bool)
        case null
        case array
        case object
    }

    /// What makes a body malformed, with the byte offset where reading stopped.
    struct SyntaxError: Error, Equatable, CustomStringConvertible {
        var reason: String
        var offset: Int
        var description: String { "\(reason) at byte \(offset)" }
    }

    /// How deep arrays and objects may nest before the body is rejected; it bounds the
    /// recursion so no input can exhaust the stack.
    static let maximumDepth = 32

    private let bytes: [UInt8]
    private var index = 0

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Reads a whole document. A top-level object comes back as its members in order
    /// (duplicates kept, so the caller can reject them); any other top-level value as `nil`.
    static func readTopLevel(_ bytes: [UInt8]) throws(SyntaxError) -> [(key: String, value: Value)]? {
        try read(bytes) { reader throws(SyntaxError) in
            guard reader.peek() == UInt8(ascii: "{") else {
                _ = try reader.readValue(depth: 0)
                return nil
            }
            var members: [(key: String, value: Value)] = []
            try reader.readObject(depth: 0) { reader, key throws(SyntaxError) in
                members.append((key, try reader.readValue(depth: 1)))
            }
            return members
        }
    }

    /// Reads a whole document with `value`, which starts at the first non-blank byte and must
    /// read exactly one value; anything but whitespace after it is an error.
    static func read<Result>(
        _ bytes: [UInt8], _ value: (inout JSONReader) throws(SyntaxError) -> Result
    ) throws(SyntaxError) -> Result {
        var reader = JSONReader(bytes)
        reader.skipWhitespace()
        let result = try value(&reader)
        reader.skipWhitespace()
        guard reader.index == bytes.count else {
            throw reader.error("unexpected data after the JSON value")
        }
        return result
    }

    /// Reads an object, handing `member` each key with the reader at the start of its value,
    /// which `member` must read (`readValue`, `readOptionalString`, `readObject`, `readArray`).
    /// `depth` is the object's own nesting depth.
    mutating func readObject(
        depth: Int, _ member: (inout JSONReader, String) throws(SyntaxError) -> Void
    ) throws(SyntaxError) {
        try readMembers(depth: depth) { reader throws(SyntaxError) in
            let key = try reader.readString()
            try reader.readNameSeparator()
            try member(&reader, key)
        }
    }

    /// ``readObject(depth:_:)`` for an object whose keys are looked up among `names` (UTF-8):
    /// `member` gets the index of the key's name, or `nil` for another key. A key that is ASCII
    /// without escapes is compared as its bytes, with no `String` made of it.
    mutating func readObject(
        depth: Int, names: [[UInt8]], _ member: (inout JSONReader, Int?) throws(SyntaxError) -> Void
    ) throws(SyntaxError) {
        try readMembers(depth: depth) { reader throws(SyntaxError) in
            let name = try reader.readKey(among: names)
            try reader.readNameSeparator()
            try member(&reader, name)
        }
    }

    /// The object's braces and commas, handing `member` the reader at each member's name (a
    /// string), to read the name, the separator and the value. Not generic over how a name is
    /// read: a generic here cost a debug build's list page 5 million instructions.
    private mutating func readMembers(
        depth: Int, _ member: (inout JSONReader) throws(SyntaxError) -> Void
    ) throws(SyntaxError) {
        guard depth <= Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth)") }
        try expect(UInt8(ascii: "{"), "'{'")
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
            try member(&self)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return
            default: throw error("expected ',' or '}'")
            }
        }
    }

    /// The `:` between a member's name and its value, with the white space around it.
    private mutating func readNameSeparator() throws(SyntaxError) {
        skipWhitespace()
        try expect(UInt8(ascii: ":"), "':' after a member name")
        skipWhitespace()
    }

    private mutating func readKey(among names: [[UInt8]]) throws(SyntaxError) -> Int? {
        let end = plainRunEnd(from: index + 1)
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            let start = index + 1
            index = end + 1
            // Byte by byte, without a closure or a generic: as cheap in a debug build.
            for position in names.indices where names[position].count == end - start {
                let name = names[position]
                var offset = 0
                while offset < name.count, name[offset] == bytes[start + offset] { offset += 1 }
                if offset == name.count { return position }
            }
            return nil
        }
        let key = Array(try readString().utf8)
        return names.firstIndex(of: key)
    }

    /// Reads an array, handing `element` the reader at the start of each element, which
    /// `element` must read. `depth` is the array's own nesting depth.
    mutating func readArray(depth: Int, _ element: (inout JSONReader) throws(SyntaxError) -> Void) throws(SyntaxError) {
        guard depth <= Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth)") }
        try expect(UInt8(ascii: "["), "'['")
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return
            default: throw error("expected ',' or ']'")
            }
        }
    }

    /// A string value, or `nil` for `null`; any other value is an error naming `field`.
    mutating func readOptionalString(_ field: String) throws(SyntaxError) -> String? {
        switch peek() {
        case UInt8(ascii: "\""): return try readString()
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return nil
        default: throw error("\(field) must be a string")
        }
    }

    /// A string value; any other value, `null` included, is an error naming `field`.
    mutating func readRequiredString(_ field: String) throws(SyntaxError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw error("\(field) must be a string") }
        return try readString()
    }

    /// Reads a string value as ``readRequiredString(_:)`` does, checking it the same way, without
    /// making a `String` of it when it is ASCII without escapes (what cm-api writes for every
    /// field but a name with other characters).
    mutating func skipRequiredString(_ field: String) throws(SyntaxError) {
        guard peek() == UInt8(ascii: "\"") else { throw error("\(field) must be a string") }
        let end = plainRunEnd(from: index + 1)
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            index = end + 1
            return
        }
        _ = try readString()
    }

    /// The byte offset the reader is at: where the next value starts once whitespace is skipped,
    /// or just past the value read last.
    var offset: Int { index }

    /// Whether the next byte is `byte` (`{` for an object, `[` for an array).
    func isAt(_ byte: UInt8) -> Bool {
        peek() == byte
    }

    /// An error at the reader's position.
    func error(_ reason: String) -> SyntaxError {
        SyntaxError(reason: reason, offset: index)
    }

    /// Where the run of bytes that stand for themselves in a string (printable ASCII other than
    /// `"` and `\`) that starts at `start` ends, read over the array's storage eight bytes at a
    /// time while none of them can end it, then byte by byte (a page through cm-server reads 600
    /// strings and keys: byte by byte with bounds checks cost ~11 instructions a byte).
    private func plainRunEnd(from start: Int) -> Int {
        bytes.withUnsafeBufferPointer { buffer in
            var end = start
            if let base = UnsafeRawPointer(buffer.baseAddress) {
                while end + 8 <= buffer.count {
                    if Self.mayEndPlainRun(base.loadUnaligned(fromByteOffset: end, as: UInt64.self)) { break }
                    end += 8
                }
            }
            while end < buffer.count {
                let byte = buffer[end]
                guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else { break }
                end += 1
            }
            return end
        }
    }

    /// Whether one of the eight bytes of `word` may end a plain run: true whenever one does (it
    /// may also be true when none does; the byte loop then decides). The tests are the zero-byte
    /// and byte-below-n tests of Sean Anderson's "Bit Twiddling Hacks": `(v - 0x01…01 × n) & ~v &
    /// 0x80…80` sets the high bit of the lowest byte of `v` below `n` (no borrow reaches it from
    /// the bytes below), and zero against a byte's pattern XORed in is that byte.
    private static func mayEndPlainRun(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits = ones &* 0x80
        func hasZeroByte(_ value: UInt64) -> Bool { (value &- ones) & ~value & highBits != 0 }
        return word & highBits != 0  // a byte from 0x80
            || (word &- ones &* 0x20) & ~word & highBits != 0  // below 0x20 (every byte is below 0x80 here)
            || hasZeroByte(word ^ (ones &* UInt64(UInt8(ascii: "\""))))
            || hasZeroByte(word ^ (ones &* UInt64(UInt8(ascii: "\\"))))
    }

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            index += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(SyntaxError) {
        guard peek() == byte else { throw error("expected \(what)") }
        index += 1
    }

    /// Reads any value; arrays and objects are checked and skipped (`.array`, `.object`).
    mutating func readValue(depth: Int) throws(SyntaxError) -> Value {
        guard let byte = peek() else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "{"):
            try readObject(depth: depth + 1) { reader, _ throws(SyntaxError) in
                _ = try reader.readValue(depth: depth + 1)
            }
            return .object
        case UInt8(ascii: "["):
            try readArray(depth: depth + 1) { reader throws(SyntaxError) in _ = try reader.readValue(depth: depth + 1) }
            return .array
        case UInt8(ascii: "t"):
            try readLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try readLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try readLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try readNumber())
        default:
            throw error("unexpected character")
        }
    }

    private mutating func readLiteral(_ literal: StaticString) throws(SyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("invalid literal") }
        for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func readDigits() -> Int {
        let start = index
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func readNumber() throws(SyntaxError) -> String {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else if readDigits() == 0 {
            throw error("invalid number")
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard readDigits() > 0 else { throw error("invalid number: digits must follow '.'") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard readDigits() > 0 else { throw error("invalid number: digits must follow the exponent") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func readHex4() throws(SyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("incomplete \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func readString() throws(SyntaxError) -> String {
        index += 1  // opening quote
        // Most strings are ASCII without escapes: their bytes are the string, and ASCII needs no
        // UTF-8 validation. Anything else takes the general path below from the start.
        let start = index
        let end = plainRunEnd(from: start)
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            index = end + 1
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }
        var utf8: [UInt8] = []
        var runStart = index
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            if byte == UInt8(ascii: "\"") {
                utf8.append(contentsOf: bytes[runStart..<index])
                index += 1
                break
            }
            if byte < 0x20 { throw error("unescaped control character in string") }
            if byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            utf8.append(contentsOf: bytes[runStart..<index])
            index += 1
            guard let escape = peek() else { throw error("unterminated string") }
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try readHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired UTF-16 surrogate") }
                    index += 2
                    let low = try readHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired UTF-16 surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired UTF-16 surrogate")
                }
                // Only surrogates are invalid scalars, and they were handled above.
                utf8.append(contentsOf: Unicode.Scalar(scalar).map { Array(String($0).utf8) } ?? [])
            default:
                throw error("invalid escape")
            }
            runStart = index
        }
        guard let string = String(validating: utf8, as: UTF8.self) else {
            throw error("string is not valid UTF-8")
        }
        return string
    }
}
