import Foundation
import Mongo

/// A document with a deterministic `_id` (`doc-<number>`), so tests can predict duplicates. The
/// binding knows no purchases: these are plain documents with a few fields of each kind.
func document(_ number: Int, owner: String = "joe", milliseconds: Int64 = 1_717_170_872_204) -> BSONDocument {
    [
        "_id": .string("doc-\(number)"),
        "owner": .string(owner),
        "amount": .decimal128("\(number).50"),
        "at": .date(milliseconds),
        "number": .int64(Int64(number)),
    ]
}

extension BSONDocument {
    var id: String? { if case .string(let id)? = self["_id"] { id } else { nil } }
}
