import Foundation
import Hummingbird
import Logging
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopHTTP

/// `GET /getAllUserBuys/{username}`: a user's purchases, newest first, read from cm-api.
struct PurchaseListRoutes {
    let client: PurchaseListClient
    var rateLimiter = RateLimiter(settings: .unlimited)

    func addRoutes(to router: RouterGroup<AppRequestContext>) {
        // The second route: the same list for a username whose %2F a proxy decoded into more
        // path segments (ingress-nginx's rewrite does); PurchaseListQuery joins them back.
        for path in ["getAllUserBuys/:username", "getAllUserBuys/:username/**"] {
            router.get(RouterPath(path)) { request, context in
                await rateLimiter.limited(.list, request: request, context: context) {
                    await list(request: request, context: context)
                }
            }
        }
    }

    private func list(request: Request, context: AppRequestContext) async -> Response {
        let query: PurchaseListQuery<String>
        do {
            // cm-api reads the cursor; cm-server passes on any within the common rule.
            query = try PurchaseListQuery(request, context: context) { $0 }
        } catch {
            return .error(.badRequest, error.message, errors: error.errors)
        }
        let username = query.username
        do {
            // cm-api verifies the token itself (it trusts no identity it did not verify) and lists
            // only the caller's own purchases under the name, unless the caller is an admin.
            let answer = try await client.page(
                username: username, limit: query.limit, cursor: query.cursor,
                authorization: request.headers.value(of: .authorization),
                ifNoneMatch: request.headers[values: .ifNoneMatch])
            var response =
                if let page = answer.page {
                    Response.json(.ok, bytes: UserPurchases(username: username, page: page).json)
                } else {
                    Response(status: .notModified)
                }
            if let tag = answer.tag {
                // cm-api's tag and caching rule: this page is made from cm-api's page alone.
                response.headers[.eTag] = tag
                response.headers[.cacheControl] = "private, no-cache"
            }
            return response
        } catch {
            switch error {
            case .rejected(let status, let message, let errors):
                return .error(.init(code: status), message, errors: errors)
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

/// The answer to `GET /getAllUserBuys/{username}`: `{"username","purchases":[…],"nextCursor"}`,
/// the original server's shape plus the next page's cursor, absent on the last page. Written by
/// hand rather than with `JSONEncoder`, around cm-api's own text of the items when it holds only
/// the contract's fields (``PurchaseListPageText``: no field decoded and encoded again), else
/// from the decoded items (see `PurchaseListItem.appendJSON`).
struct UserPurchases {
    var username: String
    var page: PurchaseListClient.Page

    var json: [UInt8] {
        var output: [UInt8] = []
        JSONText.append(#"{"username":"#, to: &output)
        JSONText.appendString(username, to: &output)
        JSONText.append(#","purchases":"#, to: &output)
        switch page {
        case .text(let page):
            output.reserveCapacity(64 + username.utf8.count + page.purchases.count)
            output.append(contentsOf: page.purchases)
        case .decoded(let page):
            output.reserveCapacity(64 + page.purchases.count * 200)
            output.append(UInt8(ascii: "["))
            for (index, item) in page.purchases.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                item.appendJSON(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        }
        if let nextCursor = page.nextCursor {
            JSONText.append(#","nextCursor":"#, to: &output)
            JSONText.appendString(nextCursor, to: &output)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }
}
