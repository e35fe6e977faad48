import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PurchaseDomain
import PurchaseWire
import ShopTestSupport
import Synchronization
import Testing

@testable import CMServer

extension PurchaseListClient {
    /// For routers whose tests never ask for a list: nothing listens on the discard port.
    static var unreachable: PurchaseListClient {
        PurchaseListClient(http: .shared, host: "127.0.0.1:9", timeout: .seconds(1))
    }
}

@Suite struct PurchaseListRouteTests {
    static let joe = [
        PurchaseListItem(
            id: "6f1c2a9e-6d3b-5a55-9c53-1d2f1e0b7a11", purchaseId: "6f1c2a9e-6d3b-5a55-9c53-1d2f1e0b7a11",
            username: "joe", userid: "005", price: "1195.30", timestamp: "2024-05-31T15:54:32.204Z"),
        PurchaseListItem(
            id: "0a4d55a8-d778-5e05-8c3c-6a3d5f1f9b02", purchaseId: "0a4d55a8-d778-5e05-8c3c-6a3d5f1f9b02",
            username: "joe", userid: "005", price: "0.10", timestamp: "2024-05-30T09:00:00.000Z"),
    ]

    /// Runs `body` against cm-server's router whose cm-api is `fake`.
    func withRouter(
        _ fake: FakeCMAPI,
        timeout: Duration = .seconds(10),
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        try await fake.serving { host in
            let client = PurchaseListClient(http: .shared, host: host, timeout: timeout)
            let app = Application(router: buildRouter(publisher: InMemoryPublisher(), purchaseLists: client))
            try await app.test(.router, body)
        }
    }

    @Test func theOriginalCallGivesTheUsernameAndPurchasesNewestFirst() async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: Self.joe, nextCursor: nil)))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .ok)
                let object = try #require(
                    JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(object["username"] as? String == "joe")
                #expect(object["nextCursor"] == nil)
                let purchases = try #require(object["purchases"] as? [[String: Any]])
                #expect(purchases.count == 2)
                #expect(purchases.first?["_id"] as? String == Self.joe[0].id)
                #expect(purchases.first?["price"] as? String == "1195.30", "the exact price text, never a float")
                #expect(purchases.map { $0["timestamp"] as? String } == Self.joe.map(\.timestamp))
            }
        }
        #expect(fake.asked.withLock { $0 } == [FakeCMAPI.Asked(path: "/buyList/joe", username: "joe", limit: "100")])
    }

    /// cm-api's items are passed on as cm-api wrote them only when they hold the contract's fields
    /// alone: a member an item should not have (a newer cm-api's, say) or a field twice never
    /// reaches the client, and the page is still served.
    @Test func onlyTheContractsFieldsReachTheClient() async throws {
        let item = #"{"_id":"1","purchaseId":"1","username":"joe","userid":"005","price":"1.00","timestamp":"t""#
        let fake = FakeCMAPI(
            .text(
                #"{"status":"Ok!","purchases":[\#(item),"secret":"s"},{"price":"9.99",\#(item.dropFirst())}],"nextCursor":"n"}"#
            ))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .ok)
                let body = String(buffer: response.body)
                // One price per item, the one cm-api's reader keeps (the first, as JSONDecoder does).
                #expect(!body.contains("secret") && body.ranges(of: #""price""#).count == 2, "\(body)")
                let answer = try JSONDecoder().decode(ListAnswer.self, from: Data(buffer: response.body))
                let one = PurchaseListItem(
                    id: "1", purchaseId: "1", username: "joe", userid: "005", price: "1.00", timestamp: "t")
                var two = one
                two.price = "9.99"
                #expect(answer == ListAnswer(username: "joe", purchases: [one, two], nextCursor: "n"))
            }
        }
    }

    /// cm-server writes this answer by hand (UserPurchases.json), not with JSONEncoder.
    @Test func itemsWithCharactersJSONMustEscapeComeThroughIntact() async throws {
        let awkward = ["quote \" and back\\slash", "line\nfeed\u{1}", "Zoë 🛒 </script>"].map {
            PurchaseListItem(
                id: "id-\($0)", purchaseId: "id-\($0)", username: $0, userid: $0, price: "1.00",
                timestamp: "2024-05-31T15:54:32.204Z")
        }
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: awkward, nextCursor: "c\"ursor")))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                let answer = try JSONDecoder().decode(ListAnswer.self, from: Data(buffer: response.body))
                #expect(answer == ListAnswer(username: "joe", purchases: awkward, nextCursor: "c\"ursor"))
            }
        }
    }

    @Test func anUnknownUserGetsAnEmptyList() async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/nobody", method: .get) { response in
                #expect(response.status == .ok)
                #expect(
                    String(buffer: response.body) == #"{"purchases":[],"username":"nobody"}"#
                        || String(buffer: response.body) == #"{"username":"nobody","purchases":[]}"#)
            }
        }
    }

    @Test(arguments: [
        ("joe%20smith", "joe smith"),
        ("a%2Fb", "a/b"),
        ("%E5%BC%A0%E4%BC%9F", "张伟"),
        ("caf%C3%A9", "café"),
        ("plus+sign", "plus+sign"),
        // As ingress-nginx's rewrite passes a%2Fb on: decoded into two segments.
        ("a/b", "a/b"),
        ("a/b%20c/%C3%A9", "a/b c/é"),
    ])
    func usernamesArePercentDecodedAndReachCmAPIIntact(path: String, username: String) async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/\(path)", method: .get) { response in
                #expect(response.status == .ok)
                let object = try #require(
                    JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(object["username"] as? String == username)
            }
        }
        #expect(fake.asked.withLock { $0.map(\.username) } == [username])
    }

    @Test func limitAndCursorArePassedThroughAndNextCursorComesBack() async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: Array(Self.joe.prefix(1)), nextCursor: "abc/+=")))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe?limit=1&cursor=xyz%2F%2B%3D", method: .get) { response in
                #expect(response.status == .ok)
                let object = try #require(
                    JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(object["nextCursor"] as? String == "abc/+=")
                #expect((object["purchases"] as? [Any])?.count == 1)
            }
        }
        #expect(fake.asked.withLock { $0.map(\.limit) } == ["1"])
        #expect(fake.asked.withLock { $0.map(\.cursor) } == ["xyz/+="])
    }

    /// cm-server's tag is cm-api's: If-None-Match is passed on, cm-api's 304 answered as a 304
    /// with its tag and no body, a 200 carries the tag. A 304 cm-server did not ask for is cm-api
    /// failing.
    @Test func conditionalRequestsArePassedOnAndCmAPIs304Answered() async throws {
        let page = PurchaseListPage(purchases: Self.joe, nextCursor: nil)
        let tag = FakeCMAPI.tag(of: page)
        let fake = FakeCMAPI(.page(page))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.eTag] == tag)
                #expect(response.headers[.cacheControl] == "private, no-cache")
            }
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get, headers: [.ifNoneMatch: tag]) {
                response in
                #expect(response.status == .notModified)
                #expect(response.headers[.eTag] == tag)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get, headers: [.ifNoneMatch: "\"old\""]) {
                response in
                #expect(response.status == .ok)
                #expect(response.body.readableBytes > 0)
            }
        }
        #expect(fake.conditions.withLock { $0 } == [nil, tag, "\"old\""])
        let unasked = FakeCMAPI(.status(.notModified, ""))
        try await withRouter(unasked) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .badGateway)
            }
        }
    }

    @Test(arguments: ["0", "1001", "-1", "ten", "1.5", ""])
    func aBadLimitIsRefusedWithoutAskingCmAPI(limit: String) async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe?limit=\(limit)", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains(#""field":"limit""#))
            }
        }
        #expect(fake.asked.withLock { $0.isEmpty })
    }

    @Test(arguments: ["%ZZ", "%00joe", String(repeating: "a", count: 129)])
    func aBadUsernameIsRefusedWithoutAskingCmAPI(path: String) async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/\(path)", method: .get) { response in
                #expect(response.status == .badRequest)
            }
        }
        #expect(fake.asked.withLock { $0.isEmpty })
    }

    @Test func cmAPIRefusingTheCursorIsTheClientsError() async throws {
        let fake = FakeCMAPI(
            .status(
                .badRequest,
                #"{"status":"Error","message":"Invalid query","errors":[{"field":"cursor","reason":"must be a nextCursor"}]}"#
            ))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe?cursor=forged", method: .get) { response in
                #expect(response.status == .badRequest)
                let answer = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(answer?["message"] as? String == "Invalid query")
                // The reason is passed on: "Invalid query" alone would not tell the client what to fix.
                let errors = answer?["errors"] as? [[String: String]]
                #expect(errors == [["field": "cursor", "reason": "must be a nextCursor"]])
            }
        }
    }

    @Test(arguments: [HTTPResponse.Status.internalServerError, .serviceUnavailable, .notFound])
    func cmAPIFailingIsA502(status: HTTPResponse.Status) async throws {
        let body = status == .notFound ? "no such route" : #"{"status":"Error","message":"boom"}"#
        // A 404 from cm-api means a wrong CM_API_HOST, not an unknown user (that is an empty list).
        let fake = FakeCMAPI(.status(status, body))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .badGateway)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(String(buffer: response.body).contains(#""status":"Error""#))
            }
        }
    }

    /// One rule for both services (docs/CONTRACT.md): a cursor of up to 256 bytes is passed on,
    /// a longer one is refused here without asking cm-api.
    @Test func aCursorIsPassedOnUpTo256BytesAndRefusedBeyond() async throws {
        let fake = FakeCMAPI(.page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await withRouter(fake) { client in
            let longest = String(repeating: "c", count: PurchaseListCursor.maximumBytes)
            try await client.execute(uri: "/getAllUserBuys/joe?cursor=\(longest)", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/getAllUserBuys/joe?cursor=\(longest)c", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains(#""field":"cursor""#))
            }
        }
        #expect(fake.asked.withLock { $0.map(\.cursor) } == [String(repeating: "c", count: 256)])
    }

    @Test func cmAPIAnsweringGarbageIsA502() async throws {
        let fake = FakeCMAPI(.status(.ok, "<html>not json</html>"))
        try await withRouter(fake) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .badGateway)
            }
        }
    }

    @Test func cmAPIDownIsA502() async throws {
        let app = Application(router: buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable))
        try await app.test(.router) { client in
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .badGateway)
            }
        }
    }

    @Test func aSlowCmAPIIsA504WithinTheTimeout() async throws {
        let fake = FakeCMAPI(.slow(.seconds(30)))
        try await withRouter(fake, timeout: .milliseconds(500)) { client in
            let start = ContinuousClock.now
            try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                #expect(response.status == .gatewayTimeout)
                #expect(String(buffer: response.body).contains(#""status":"Error""#))
            }
            // Measured 0.34 s alone and 3.1 s while every suite starts at once; cm-api takes 30 s.
            #expect(ContinuousClock.now - start < .seconds(10), "answered at the timeout, not when cm-api did")
        }
    }
}

private struct ListAnswer: Decodable, Equatable {
    var username: String
    var purchases: [PurchaseListItem]
    var nextCursor: String?
}
