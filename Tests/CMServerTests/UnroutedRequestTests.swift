import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CMServer

/// Requests no route takes get the contract's JSON error: 404 for an unknown path, 405 with
/// `Allow` for a known path asked with another method (schemathesis' unsupported-method check).
@Suite struct UnroutedRequestTests {
    static func error(_ response: TestResponse) throws -> [String: Any] {
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
        #expect(answer["status"] as? String == "Error")
        #expect((answer["message"] as? String)?.isEmpty == false)
        return answer
    }

    @Test(arguments: [
        (HTTPRequest.Method.trace, "/healthz", "GET"),
        (.delete, "/buy", "POST"),
        (.put, "/getAllUserBuys/joe", "GET"),
        (.post, "/", "GET"),
        (.patch, "/metrics", "GET"),
    ])
    func aKnownPathWithAnotherMethodIs405(method: HTTPRequest.Method, path: String, allow: String) async throws {
        let app = Application(router: buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable))
        try await app.test(.router) { client in
            try await client.execute(uri: path, method: method) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == allow)
                let answer = try Self.error(response)
                #expect((answer["message"] as? String)?.contains(allow) == true)
            }
        }
    }

    // `/getAllUserBuys/joe/more` is the list of "joe/more": a proxy may decode a username's %2F
    // (PurchaseListRouteTests).
    @Test(arguments: ["/nope", "/buy/extra", "/getAllUserBuys", "/getAllUserBuysjoe", "/../etc/passwd"])
    func anUnknownPathIs404(path: String) async throws {
        let app = Application(router: buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable))
        try await app.test(.router) { client in
            try await client.execute(uri: path, method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.allow] == nil)
                _ = try Self.error(response)
            }
        }
    }

    /// The middleware sees only requests no route took: a route's own 404-free answers pass.
    @Test func routedRequestsAreUntouched() async throws {
        let app = Application(router: buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable))
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "Success")
            }
        }
    }
}
