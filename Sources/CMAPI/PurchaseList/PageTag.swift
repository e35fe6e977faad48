import Crypto
import Hummingbird
import Mongo

/// The entity tag of a list page (`ETag`, RFC 9110 §8.8.3): a digest of the keys (`_id`,
/// `timestamp`) of the documents the page's query found, one past the page included (it decides
/// `nextCursor`). Purchases are written once and never changed, so the keys decide the page's
/// text; a poll that sends the tag back (`If-None-Match`) is answered 304 after a query that
/// reads only those keys, from the `username_timestamp_id` index alone when the list is not
/// narrowed to a userid. The same documents give the same tag on every replica.
struct PageTag: Hashable, Sendable, CustomStringConvertible {
    /// A document's place in the digest: its id as text and, when it has a place in the list,
    /// its timestamp in milliseconds.
    struct Key: Hashable, Sendable {
        var id: String
        var milliseconds: Int64?

        init(id: String, milliseconds: Int64?) {
            self.id = id
            self.milliseconds = milliseconds
        }

        /// From the document as the full query returned it.
        init(_ document: StoredDocument) {
            switch document {
            case .purchase(let purchase): id = purchase.id
            case .unreadable(let unreadable): id = unreadable.id
            }
            milliseconds = document.resumePoint?.timestamp.millisecondsSinceEpoch
        }

        /// From a document of the keys-only query: the same text as ``init(_:)-(StoredDocument)``
        /// gives (`UnreadableDocument`'s rules for an `_id` that is not a string).
        init(keys document: BSONDocument) {
            switch document["_id"] {
            case .string(let text)?:
                id = text
                if case .date(let milliseconds)? = document["timestamp"] {
                    self.milliseconds = milliseconds
                } else {
                    milliseconds = nil
                }
            case let other?:
                id = "\(other)"
                milliseconds = nil
            case nil:
                id = "(no _id)"
                milliseconds = nil
            }
        }
    }

    /// The quoted tag as sent in `ETag`: 128 bits of SHA-256, hex.
    let description: String

    init(keys: some Sequence<Key>) {
        var digest = Digest()
        for key in keys {
            digest.add(milliseconds: key.milliseconds) { $0.append(contentsOf: key.id.utf8) }
        }
        description = digest.tag
    }

    init(documents: [StoredDocument]) {
        self.init(keys: documents.lazy.map(Key.init))
    }

    /// The tag of a page read for listing: the same as ``init(documents:)`` gives the same
    /// documents, without a string per id.
    init(listed documents: [ListedDocument]) {
        var digest = Digest()
        for document in documents {
            switch document {
            case .purchase(let purchase):
                digest.add(milliseconds: purchase.timestamp.millisecondsSinceEpoch) {
                    purchase.id.appendLowercased(to: &$0)
                }
            case .unreadable(let unreadable):
                digest.add(milliseconds: unreadable.resumePoint?.timestamp.millisecondsSinceEpoch) {
                    $0.append(contentsOf: unreadable.id.utf8)
                }
            }
        }
        description = digest.tag
    }

    /// SHA-256 over a line per document: its id, a NUL, its milliseconds when it has a place.
    /// The lines are gathered and hashed at once, their numbers written without a string each
    /// (a hash update and a `String` per document cost ~2,400 instructions, issue 31).
    private struct Digest {
        var text: [UInt8] = []

        init() {
            // The representation's version: a change to the page's JSON changes every tag.
            text.reserveCapacity(4096)
            text.append(contentsOf: "purchase-list-v1\n".utf8)
        }

        mutating func add(milliseconds: Int64?, id: (inout [UInt8]) -> Void) {
            id(&text)
            text.append(0)
            if let milliseconds {
                if milliseconds < 0 { text.append(UInt8(ascii: "-")) }
                milliseconds.magnitude.appendDecimal(to: &text)
            }
            text.append(UInt8(ascii: "\n"))
        }

        var tag: String {
            let digits = Array("0123456789abcdef".utf8)
            var quoted: [UInt8] = [UInt8(ascii: "\"")]
            for byte in SHA256.hash(data: text).prefix(16) {
                quoted.append(digits[Int(byte >> 4)])
                quoted.append(digits[Int(byte & 0xf)])
            }
            quoted.append(UInt8(ascii: "\""))
            return String(decoding: quoted, as: UTF8.self)
        }
    }

    /// Whether `If-None-Match` (every field line of it) names this tag: `*`, or a list of tags
    /// compared weakly (`W/"x"` matches `"x"`), RFC 9110 §13.1.2. A malformed member matches nothing.
    func isMatched(byIfNoneMatch fields: [String]) -> Bool {
        for field in fields {
            for member in field.split(separator: ",") {
                var tag = member.trimmingPrefix(while: \.isWhitespace)
                while tag.last?.isWhitespace == true { tag = tag.dropLast() }
                if tag == "*" { return true }
                if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
                if tag == description { return true }
            }
        }
        return false
    }

    /// The headers every list answer carries: the tag, and that any cache must ask again before
    /// reusing the page (it changes with every purchase) and keep it to the one user.
    func addHeaders(to headers: inout HTTPFields) {
        headers[.eTag] = description
        headers[.cacheControl] = "private, no-cache"
    }
}
