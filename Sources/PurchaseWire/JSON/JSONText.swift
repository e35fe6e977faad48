/// The pieces of JSON text the hand-written writers share.
public enum JSONText {
    /// Appends literal JSON text (keys, punctuation) as it is.
    public static func append(_ literal: StaticString, to output: inout [UInt8]) {
        literal.withUTF8Buffer { output.append(contentsOf: $0) }
    }

    /// Appends `value` as a JSON string: quotation mark, reverse solidus and the control
    /// characters U+0000 to U+001F escaped, everything else as its UTF-8 (a Swift string is
    /// always valid Unicode, so the output is valid UTF-8).
    public static func appendString(_ value: String, to output: inout [UInt8]) {
        var value = value
        value.makeContiguousUTF8()
        output.append(quote)
        _ = value.utf8.withContiguousStorageIfAvailable { bytes in
            // Runs without anything to escape are copied whole.
            var start = bytes.startIndex
            for index in bytes.indices {
                let byte = bytes[index]
                guard byte < 0x20 || byte == quote || byte == backslash else { continue }
                output.append(contentsOf: bytes[start..<index])
                output.append(backslash)
                if byte < 0x20 {
                    output.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    output.append(hexDigits[Int(byte >> 4)])
                    output.append(hexDigits[Int(byte & 0x0F)])
                } else {
                    output.append(byte)
                }
                start = index + 1
            }
            output.append(contentsOf: bytes[start...])
        }
        output.append(quote)
    }

    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
