import Foundation
import PurchaseDomain
import PurchaseWire
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

    /// cm-api's page: read back to the same values, the same bytes every time (a strong ETag),
    /// and taken by cm-server's pass-through reader as it is.
    @Test func aPageReadsBackAsTheSameValuesAndIsTheSameBytesEachTime() throws {
        let items = Self.awkward.map { text in
            PurchaseListItem(
                id: text, purchaseId: "P-\(text)", username: text, userid: text, price: "0.01",
                timestamp: "2024-05-31T15:54:32.204Z")
        }
        for page in [
            PurchaseListPage(purchases: items, nextCursor: "abc-_"), PurchaseListPage(purchases: [], nextCursor: nil),
        ] {
            let json = page.json
            #expect(try JSONDecoder().decode(PurchaseListPage.self, from: Data(json)) == page)
            #expect(page.json == json)
            let text = try #require(PurchaseListPageText(json: json))
            #expect(text.count == page.purchases.count && text.nextCursor == page.nextCursor)
        }
        let last = PurchaseListPage(purchases: [], nextCursor: nil).json
        #expect(String(decoding: last, as: UTF8.self) == #"{"status":"Ok!","purchases":[]}"#)
    }

    @Test func controlCharactersAreEscapedAndNothingElseIs() {
        var output: [UInt8] = []
        JSONText.appendString("a\"b\\c\u{0}\u{1f}é", to: &output)
        #expect(String(decoding: output, as: UTF8.self) == #""a\"b\\c\u0000\u001fé""#)
    }

    /// Answers a cm-api may give: the hand-written reader must read each to the page
    /// `JSONDecoder` reads.
    static let readableAnswers = [
        #"{"status":"Ok!","purchases":[\#(item("1")),\#(item("2"))],"nextCursor":"abc/+="}"#,
        #"{"status":"Ok!","purchases":[\#(item("1"))],"nextCursor":null}"#,
        #"{"status":"Ok!","purchases":[]}"#,
        #"{"purchases":[\#(item("1"))],"status":"Ok!"}"#,
        " \n{ \"status\" : \"Ok!\" ,\t\"purchases\" : [ \(item("1")) , \(item("2")) ] }\r\n",
        #"{"status":"Ok!","purchases":[],"total":3,"meta":{"a":[1,{"b":null}]},"ok":true}"#,
        #"{"status":"Ok!","purchases":[{"coupon":{"code":"x"},\#(item("1").dropFirst())]}"#,
        #"{"status":"Ok!","purchases":[{"_id":"\u00e9\n\"","purchaseId":"p","username":"Zoë 🛒","userid":"u","price":"1.00","timestamp":"t"}]}"#,
        #"{"status":"Ok!","purchases":[],"nextCursor":"a","nextCursor":"b"}"#,
        #"{"status":"Ok!","purchases":[],"nextCursor":null,"nextCursor":"b","status":7}"#,
        #"{"status":"Ok!","purchases":[{"price":"2.00",\#(item("1").dropFirst())]}"#,
        #"{"status":"Ok!","purchases":[\#(item("1").replacingOccurrences(of: #""_id""#, with: #""\u005fid""#))]}"#,
    ]

    /// Answers that are not a purchase list: both readers must refuse each.
    static let unreadableAnswers = [
        "", "[]", "null", "{}", "{", #"{"purchases":[]}"#, #"{"status":null,"purchases":[]}"#,
        #"{"status":1,"purchases":[]}"#, #"{"status":"Ok!"}"#, #"{"status":"Ok!","purchases":null}"#,
        #"{"status":"Ok!","purchases":{}}"#, #"{"status":"Ok!","purchases":["x"]}"#,
        #"{"status":"Ok!","purchases":[null]}"#, #"{"status":"Ok!","purchases":[{"purchaseId":"p"}]}"#,
        #"{"status":"Ok!","purchases":[\#(item("1").replacingOccurrences(of: #""price":"1.00""#, with: #""price":1.00"#))]}"#,
        #"{"status":"Ok!","purchases":[\#(item("1").replacingOccurrences(of: #""price":"1.00""#, with: #""price":null"#))]}"#,
        #"{"status":"Ok!","purchases":[],"nextCursor":7}"#, #"{"status":"Ok!","purchases":[]} x"#,
        #"{"status":"Ok!","purchases":[\#(item("1"))"#,
    ]

    static func item(_ id: String) -> String {
        #"{"_id":"\#(id)","purchaseId":"\#(id)","username":"joe","userid":"005","price":"1.00","timestamp":"2024-05-31T15:54:32.204Z"}"#
    }

    @Test(arguments: readableAnswers)
    func anAnswerReadsAsJSONDecoderReadsIt(_ text: String) throws {
        let decoded = try JSONDecoder().decode(PurchaseListPage.self, from: Data(text.utf8))
        #expect(try PurchaseListPage(json: Array(text.utf8)) == decoded)
    }

    @Test(arguments: unreadableAnswers)
    func whatJSONDecoderRefusesIsRefused(_ text: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(PurchaseListPage.self, from: Data(text.utf8)) }
        #expect(throws: PurchaseListPage.ReadingError.self) { try PurchaseListPage(json: Array(text.utf8)) }
    }

    /// RFC 8259 has no trailing comma; Foundation's decoder takes one, this reader does not.
    @Test func aTrailingCommaIsRefused() {
        #expect(throws: PurchaseListPage.ReadingError.self) {
            try PurchaseListPage(json: Array(#"{"status":"Ok!","purchases":[],}"#.utf8))
        }
    }

    @Test func invalidUTF8IsRefused() {
        var bytes = Array(Self.readableAnswers[0].utf8)
        bytes.insert(0xFF, at: bytes.firstIndex(of: UInt8(ascii: "j"))!)
        #expect(throws: PurchaseListPage.ReadingError.self) { try PurchaseListPage(json: bytes) }
    }

    @Test(arguments: awkward)
    func aWrittenPageReadsBack(_ text: String) throws {
        let items = [
            PurchaseListItem(
                id: text, purchaseId: "P-\(text)", username: text, userid: text, price: "1195.30",
                timestamp: "2024-05-31T15:54:32.204Z"),
            PurchaseListItem(id: "2", purchaseId: "2", username: "joe", userid: "005", price: "1.00", timestamp: "t"),
        ]
        var output: [UInt8] = []
        JSONText.append(#"{"status":"Ok!","purchases":["#, to: &output)
        for (index, item) in items.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            item.appendJSON(to: &output)
        }
        JSONText.append(#"],"nextCursor":"#, to: &output)
        JSONText.appendString(text, to: &output)
        output.append(UInt8(ascii: "}"))
        #expect(try PurchaseListPage(json: output) == PurchaseListPage(purchases: items, nextCursor: text))
    }
}

/// cm-server passes cm-api's items on as text (`PurchaseListPageText`) only when that text holds
/// exactly what the decoder would keep; every other page goes the decoding way.
@Suite struct PurchaseListPassThroughTests {
    /// Whatever is passed on decodes to the very items, count and cursor the reader reads.
    @Test(arguments: PurchaseListJSONTests.readableAnswers)
    func passedTextHoldsExactlyTheItemsTheReaderReads(_ text: String) throws {
        let json = Array(text.utf8)
        let page = try PurchaseListPage(json: json)
        guard let passed = PurchaseListPageText(json: json) else { return }
        #expect(try JSONDecoder().decode([PurchaseListItem].self, from: Data(passed.purchases)) == page.purchases)
        #expect(passed.count == page.purchases.count && passed.nextCursor == page.nextCursor)
    }

    /// A member name written with escapes is the name it spells: the item is passed on.
    @Test func anEscapedMemberNameIsTheNameItSpells() throws {
        let escaped = PurchaseListJSONTests.readableAnswers.last!
        let passed = try #require(PurchaseListPageText(json: Array(escaped.utf8)))
        #expect(passed.count == 1)
        let twice = escaped.replacingOccurrences(of: #""purchaseId""#, with: #""\u005fid""#)
        #expect(PurchaseListPageText(json: Array(twice.utf8)) == nil, "the same field twice")
    }

    /// What cm-api writes (`appendJSON`, awkward strings included) is passed on, byte for byte.
    @Test(arguments: PurchaseListJSONTests.awkward)
    func whatCMAPIWritesIsPassedOnAsItIs(_ text: String) throws {
        var items: [UInt8] = []
        JSONText.append("[", to: &items)
        PurchaseListItem(
            id: text, purchaseId: "P", username: text, userid: text, price: "1.00", timestamp: "t"
        ).appendJSON(to: &items)
        JSONText.append(",", to: &items)
        PurchaseListItem(id: "2", purchaseId: "2", username: "joe", userid: "005", price: "1.00", timestamp: "t")
            .appendJSON(to: &items)
        JSONText.append("]", to: &items)
        var page: [UInt8] = []
        JSONText.append(#"{"status":"Ok!","purchases":"#, to: &page)
        page += items
        JSONText.append(#","nextCursor":"c"}"#, to: &page)
        let passed = try #require(PurchaseListPageText(json: page))
        #expect(Array(passed.purchases) == items && passed.count == 2 && passed.nextCursor == "c")
    }

    /// Items the decoder would change on the way (a member it drops, a field twice: which one a
    /// client's parser keeps is its own choice) and every answer it refuses are not passed on.
    @Test(
        arguments: [
            #"{"status":"Ok!","purchases":[{"coupon":{"code":"x"},\#(PurchaseListJSONTests.item("1").dropFirst())]}"#,
            #"{"status":"Ok!","purchases":[{"price":"2.00",\#(PurchaseListJSONTests.item("1").dropFirst())]}"#,
            #"{"status":"Ok!","purchases":[\#(PurchaseListJSONTests.item("1").dropLast()),"secret":"s"}]}"#,
            #"{"status":"Ok!","purchases":[{"_id":"1","purchaseId":"1","username":"joe","userid":"005","price":"1.00"}]}"#,
        ] + PurchaseListJSONTests.unreadableAnswers)
    func aPageHoldingMoreOrLessIsNotPassedOn(_ text: String) {
        #expect(PurchaseListPageText(json: Array(text.utf8)) == nil)
    }

    /// Strings are read eight bytes at a time while none of the eight can end them: an escape,
    /// a control character, a non-ASCII byte or DEL (which stands for itself) at every place of
    /// a word is read as JSONDecoder reads it, by the reader and by the pass-through.
    @Test func aByteThatEndsAPlainRunIsSeenWhereverItIs() throws {
        for special in [#"\""#, #"\\"#, #"\n"#, "é", "\u{7F}", "\u{1F}"] {
            for offset in 0...17 {
                let name = String(repeating: "a", count: offset) + special + String(repeating: "b", count: 17 - offset)
                let text =
                    #"{"status":"Ok!","purchases":[{"_id":"1","purchaseId":"1","username":"\#(name)","userid":"005","#
                    + #""price":"1.00","timestamp":"t"}]}"#
                let decoded = try? JSONDecoder().decode(PurchaseListPage.self, from: Data(text.utf8))
                #expect((try? PurchaseListPage(json: Array(text.utf8))) == decoded, "\(special) at \(offset)")
                let passed = PurchaseListPageText(json: Array(text.utf8))
                if let decoded {
                    let items = try #require(passed, "\(special) at \(offset)").purchases
                    #expect(try JSONDecoder().decode([PurchaseListItem].self, from: Data(items)) == decoded.purchases)
                } else {
                    #expect(passed == nil, "\(special) at \(offset)")
                }
            }
        }
    }

    @Test func invalidUTF8IsNotPassedOn() {
        var bytes = Array(PurchaseListJSONTests.readableAnswers[0].utf8)
        bytes.insert(0xFF, at: bytes.firstIndex(of: UInt8(ascii: "j"))!)
        #expect(PurchaseListPageText(json: bytes) == nil)
    }
}
