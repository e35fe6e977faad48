import Events
import Foundation
import Hummingbird
import Logging
import ShopHTTP

/// `GET /getAllUserBuys/{username}`: a user's purchases, newest first, read from cm-api.
struct PurchaseListController {
    let client: PurchaseListClient

    /// The longest cursor passed on; cm-api's cursors are far shorter.
    static var maximumCursorBytes: Int { 1024 }

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("getAllUserBuys/:username") { request, context in
            await list(request: request, context: context)
        }
    }

    private func list(request: Request, context: some RequestContext) async -> Response {
        let query: PurchaseListQuery<String>
        do {
            query = try PurchaseListQuery(request, context: context) { cursor throws(FieldError) in
                guard !cursor.isEmpty, cursor.utf8.count <= Self.maximumCursorBytes else { throw .invalidCursor }
                return cursor
            }
        } catch {
            return error.response
        }
        let username = query.username
        do {
            let page = try await client.page(username: username, limit: query.limit, cursor: query.cursor)
            return .json(.ok, UserPurchases(username: username, purchases: page.purchases, nextCursor: page.nextCursor))
        } catch {
            switch error {
            case .rejected(let status, let message):
                return .error(.init(code: status), message)
            case .upstream(let reason, let detail):
                context.logger.warning("cm-api failed", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
                return .error(.badGateway, "The purchase list is unavailable: \(reason)")
            case .timedOut:
                context.logger.warning("cm-api timed out", metadata: ["timeout": "\(client.timeout)"])
                return .error(.gatewayTimeout, "The purchase list did not arrive in time (\(client.timeout))")
            }
        }
    }
}

/// `{"username":"joe","purchases":[…],"nextCursor":"…"}`, the original server's shape plus the
/// cursor of the next page when there is one.
struct UserPurchases: Encodable {
    var username: String
    var purchases: [PurchaseListItem]
    var nextCursor: String?
}
