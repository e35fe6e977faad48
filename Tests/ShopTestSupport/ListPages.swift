import Foundation
public import HummingbirdTesting
import NIOCore
import PurchaseDomain
public import PurchaseWire

/// Reads every page of a purchase list (`path`, e.g. `/buyList/joe`) through a router, following
/// `nextCursor`, and checks each page on the way: 200, `"Ok!"` and at most `limit` items.
public func allPages(_ client: some TestClientProtocol, path: String, limit: Int) async throws
    -> [PurchaseListItem]
{
    var items: [PurchaseListItem] = []
    var cursor: String?
    repeat {
        var uri = "\(path)?limit=\(limit)"
        if let cursor { uri += "&cursor=\(cursor)" }
        let page = try await client.execute(uri: uri, method: .get) { response in
            guard response.status == .ok else { throw PageError("\(uri) answered \(response.status)") }
            return try JSONDecoder().decode(PurchaseListPage.self, from: Data(response.body.readableBytesView))
        }
        guard page.status == "Ok!", page.purchases.count <= limit else {
            throw PageError("\(uri): status \(page.status), \(page.purchases.count) items for limit \(limit)")
        }
        items += page.purchases
        cursor = page.nextCursor
    } while cursor != nil
    return items
}

struct PageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
