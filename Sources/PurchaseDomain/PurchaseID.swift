internal import Crypto
public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A client-chosen key that makes retries of one `POST /buy` collapse into one purchase.
public struct IdempotencyKey: Hashable, Sendable {
    public let value: String

    /// The longest key accepted, in bytes.
    public static let maximumLength = 255

    /// Accepts 1 to 255 visible ASCII characters (`!` to `~`), which covers UUIDs, ULIDs and
    /// the other keys clients generate, and nothing a proxy could rewrite.
    /// - Throws: ``PurchaseDecodingError/invalid(_:)`` naming the `Idempotency-Key` header.
    public init(_ value: String) throws(PurchaseDecodingError) {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= Self.maximumLength,
            bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E })
        else {
            throw .invalid([
                FieldError(
                    field: "Idempotency-Key",
                    reason: "must be 1 to \(Self.maximumLength) visible ASCII characters without spaces"
                )
            ])
        }
        self.value = value
    }
}

extension UUID {
    /// The canonical text in lower case (`uuidString.lowercased()`), as the contract writes
    /// purchaseIds, without Foundation's formatting and a second string for the case.
    public var lowercasedString: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(36)
        appendLowercased(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends ``lowercasedString``'s text.
    public func appendLowercased(to output: inout [UInt8]) {
        withLowercasedText { output.append(contentsOf: $0) }
    }

    /// Lends ``lowercasedString``'s 36 bytes, written on the stack: appended at once rather than
    /// one by one (36 single appends, each checking the array's capacity, cost ~1,000
    /// instructions an id), and written once for a text that holds the id twice.
    public func withLowercasedText<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        let digits = StaticString("0123456789abcdef").utf8Start
        var text: (UInt64, UInt64, UInt64, UInt64, UInt32) = (0, 0, 0, 0, 0)  // 36 bytes, no heap even in a debug build
        return withUnsafeMutableBytes(of: &text) { text in
            withUnsafeBytes(of: uuid) { bytes in
                var position = 0
                for index in 0..<16 {
                    // Hyphens before the 5th, 7th, 9th and 11th byte: groups of 4, 2, 2, 2, 6.
                    if index >= 4, index <= 10, index % 2 == 0 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    text[position] = digits[Int(bytes[index] >> 4)]
                    text[position + 1] = digits[Int(bytes[index] & 0x0F)]
                    position += 2
                }
            }
            return body(UnsafeRawBufferPointer(text))
        }
    }

    /// The namespace of name-based purchase ids (RFC 9562 version 5). Fixed forever: changing
    /// it would give a retried request a new id and so store it twice.
    static let purchaseNamespace = UUID(uuidString: "39704141-781a-495f-a038-3a37be9cccdb")!

    /// A new random purchase id (RFC 9562 version 4): 122 bits from the kernel's CSPRNG through
    /// `arc4random_buf` (glibc 2.36 and Darwin), one `getrandom(2)` call on Linux. Foundation's
    /// `UUID()` on Linux opens, reads and closes `/dev/urandom` for each id: three system calls
    /// and a file opened and released on every purchase (strace under `wrk`, issue 31).
    public static func randomPurchaseID() -> UUID {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { buffer in
            arc4random_buf(buffer.baseAddress!, buffer.count)
            buffer[6] = (buffer[6] & 0x0F) | 0x40  // version 4
            buffer[8] = (buffer[8] & 0x3F) | 0x80  // variant 10
        }
        return UUID(uuid: bytes)
    }

    /// The purchase id for a request carrying an `Idempotency-Key`: the same `(userid, key)`
    /// always gives the same id, and different pairs give different ids.
    ///
    /// The name hashed is `userid`, a NUL, then the key. A userid never contains a control
    /// character, so the NUL separates the two unambiguously.
    public static func purchaseID(userid: String, idempotencyKey: IdempotencyKey) -> UUID {
        var hasher = Insecure.SHA1()
        withUnsafeBytes(of: purchaseNamespace.uuid) { hasher.update(bufferPointer: $0) }
        hasher.update(data: Array(userid.utf8) + [0] + Array(idempotencyKey.value.utf8))
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            )
        )
    }
}
