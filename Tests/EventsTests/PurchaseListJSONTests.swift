import Events
import Foundation
import Testing

@Suite struct PurchaseListJSONTests {
    /// Strings JSON must escape, and ones it must not touch.
    static let awkward = [
        "joe", "", "quote \" inside", "back\\slash", "line\nfeed\r\ttab", "\u{0}nul\u{1}\u{1f}", "del \u{7f}",
        "Zoë 日本 🛒", "</script><img src=x onerror=alert(1)>", "{\"$gt\":\"\"}", "\u{2028}\u{2029}", "a/b",
    ]

    @Test(arguments: awkward)
    func anItemReadsBackAsTheSameValues(_ text: String) throws {
        let item = PurchaseListItem(
            id: text, purchaseId: "P-\(text)", username: text, userid: text, price: "1195.30",
            timestamp: "2024-05-31T15:54:32.204Z")
        var output: [UInt8] = []
        item.appendJSON(to: &output)
        #expect(try JSONDecoder().decode(PurchaseListItem.self, from: Data(output)) == item)
        // Valid JSON for any reader, not only Foundation's decoder, and the contract's key names.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output)) as? [String: String])
        #expect(Set(object.keys) == ["_id", "purchaseId", "username", "userid", "price", "timestamp"])
        #expect(object["username"] == text)
    }

    @Test func controlCharactersAreEscapedAndNothingElseIs() {
        var output: [UInt8] = []
        JSONText.appendString("a\"b\\c\u{0}\u{1f}é", to: &output)
        #expect(String(decoding: output, as: UTF8.self) == #""a\"b\\c\u0000\u001fé""#)
    }
}
