import Foundation
import ShopHTTP
import Testing

/// base64url without padding (RFC 4648 §5), as JWTs' parts and cm-api's list cursors are
/// written.
@Suite struct Base64URLTests {
    @Test func theRFCsVectorsWithoutPadding() {
        let vectors = [
            "": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy",
        ]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Data(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Data(plain.utf8))
        }
    }

    @Test func minusAndUnderscoreStandForPlusAndSlash() {
        #expect(Base64URL.encode(Data([0xFB, 0xFF, 0xBF])) == "-_-_")
        #expect(Base64URL.decode("-_-_") == Data([0xFB, 0xFF, 0xBF]))
        let everyByte = Data(0...255)
        #expect(Base64URL.decode(Base64URL.encode(everyByte)) == everyByte)
    }

    @Test func anythingButUnpaddedBase64URLIsRefused() {
        for text in ["+_-_", "/_-_", "Zg==", "Zm9v YmFy", "Zé", "Z", "Zm9vY"] {
            #expect(Base64URL.decode(text) == nil, "\(text)")
        }
    }
}
