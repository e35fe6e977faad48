public import Foundation

/// base64url without padding (RFC 4648 §5), as JWTs write their parts and cm-api its list
/// cursors: mapped from and to base64 byte by byte (three `String.replacing` calls cost ~32,000
/// instructions a cursor, 6 % of a page of 100; issue 31).
public enum Base64URL {
    /// `data` in base64url, unpadded.
    public static func encode(_ data: Data) -> String {
        let base64 = data.base64EncodedData()
        var text: [UInt8] = []
        text.reserveCapacity(base64.count)
        for byte in base64 {
            switch byte {
            case UInt8(ascii: "+"): text.append(UInt8(ascii: "-"))
            case UInt8(ascii: "/"): text.append(UInt8(ascii: "_"))
            case UInt8(ascii: "="): continue
            default: text.append(byte)
            }
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes `text` encodes; `nil` unless it is unpadded base64url (ASCII letters and
    /// digits, `-` and `_`) of a whole number of bytes.
    public static func decode(_ text: some StringProtocol) -> Data? {
        var base64: [UInt8] = []
        base64.reserveCapacity(text.utf8.count + 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                base64.append(byte)
            case UInt8(ascii: "-"): base64.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): base64.append(UInt8(ascii: "/"))
            default: return nil
            }
        }
        base64.append(contentsOf: repeatElement(UInt8(ascii: "="), count: (4 - base64.count % 4) % 4))
        return Data(base64Encoded: Data(base64))
    }
}
