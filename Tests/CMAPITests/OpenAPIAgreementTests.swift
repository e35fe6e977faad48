import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopTestSupport
import Testing

@testable import CMAPI

/// cm-api's `openapi.yaml` and its router agree: the same operations, and every documented
/// response is one the code gives, in the documented media type with the required fields.
@Suite struct OpenAPIAgreementTests {
    static let document = OpenAPIDocument(yaml: PackageResources.openapi_yaml)

    /// A request, the operation it exercises and the status it gets; `mongoDown` makes the
    /// store fail as MongoDB down would, `consumerRunning` sets the ingest's state.
    struct Case: Sendable, CustomStringConvertible {
        var operation: String
        var uri: String
        var status: Int
        var mongoDown = false
        var consumerRunning = true
        /// A Kafka client of the process is broken for good.
        var broken = false
        /// `If-None-Match` names the tag of joe's first page as it is.
        var conditional = false
        /// AUTH_MODE=jwt with a service token: who calls, or `nil` for AUTH_MODE=none.
        var caller: Caller? = nil
        var description: String { "\(uri) -> \(status)\(caller.map { " as \($0)" } ?? "")" }

        enum Caller: Sendable {
            /// Without cm-server's service token.
            case stranger
            /// Through cm-server, for joe (userid 1), whose purchase is stored.
            case joe
            /// Through cm-server, for bob.
            case bob
        }
    }

    static let storedID = UUID.randomPurchaseID()
    /// A document of joe's that another writer left and that is not a purchase.
    static let unreadableID = UUID.randomPurchaseID()

    static let cases: [Case] = [
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe", status: 200),
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe", status: 304, conditional: true),
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe?limit=0", status: 400),
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe", status: 503, mongoDown: true),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(storedID)", status: 200),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/x", status: 400),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(UUID())", status: 404),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(unreadableID)", status: 500),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(storedID)", status: 503, mongoDown: true),
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe", status: 401, caller: .stranger),
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe", status: 200, caller: .bob),
        Case(operation: "GET /buyList/{username}", uri: "/buyList/joe", status: 200, caller: .joe),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(storedID)", status: 401, caller: .stranger),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(storedID)", status: 404, caller: .bob),
        Case(operation: "GET /purchases/{purchaseId}", uri: "/purchases/\(storedID)", status: 200, caller: .joe),
        Case(operation: "GET /healthz", uri: "/healthz", status: 200),
        Case(operation: "GET /healthz", uri: "/healthz", status: 503, broken: true),
        Case(operation: "GET /readyz", uri: "/readyz", status: 200),
        Case(operation: "GET /readyz", uri: "/readyz", status: 200, consumerRunning: false),
        Case(operation: "GET /readyz", uri: "/readyz", status: 503, mongoDown: true),
        Case(operation: "GET /readyz/ingest", uri: "/readyz/ingest", status: 200),
        Case(operation: "GET /readyz/ingest", uri: "/readyz/ingest", status: 503, consumerRunning: false),
        Case(operation: "GET /metrics", uri: "/metrics", status: 200),
        Case(operation: "GET /openapi.yaml", uri: "/openapi.yaml", status: 200),
    ]

    @Test func theRouterHasExactlyTheDocumentedOperations() throws {
        let router = buildRouter(store: InMemoryPurchaseStore(), status: IngestStatus())
        let routed = Set(
            router.routes.map { "\($0.method) \($0.path.description.hasPrefix("/") ? "" : "/")\($0.path)" })
        #expect(Self.document.version?.hasPrefix("3.") == true)
        #expect(routed == Self.document.operations)
    }

    @Test func everyDocumentedResponseIsExercisedHere() {
        #expect(Self.document.responses == Set(Self.cases.map { "\($0.operation) \($0.status)" }))
    }

    @Test(arguments: cases)
    func theAnswerIsDocumented(_ testCase: Case) async throws {
        let purchase = try Purchase(
            username: "joe", userid: "1", price: Price(hundredths: 100),
            timestamp: Timestamp(millisecondsSinceEpoch: 1_700_000_000_000))
        let store = InMemoryPurchaseStore([
            StoredPurchase(
                event: PurchaseEvent(purchaseId: Self.storedID, purchase: purchase, receivedAt: purchase.timestamp),
                partition: 0, offset: 0)
        ])
        store.addUnreadable(
            UnreadableDocument(id: Self.unreadableID.lowercasedString, reason: "price is a double", resumePoint: nil),
            username: "joe")
        if testCase.mongoDown { store.setUnavailable("MongoDB unreachable: no server") }
        let status = IngestStatus()
        status.setRunning(testCase.consumerRunning)
        let broken = testCase.broken
        var auth = RouteAuth.none
        var headers: HTTPFields = [:]
        if let caller = testCase.caller {
            let secret = String(repeating: "s", count: 32)
            let serviceToken = ServiceToken(String(repeating: "t", count: 32))!
            auth = RouteAuth(
                verifier: try await TokenVerifier(
                    settings: AuthSettings(mode: .jwt, keys: .hmac(secret: secret), issuer: "i", audience: "a")),
                serviceToken: serviceToken)
            let who =
                caller == .bob
                ? ShopPrincipal(userid: "2", username: "bob") : ShopPrincipal(userid: "1", username: "joe")
            let token = try await TokenMinter.token(
                for: who, secret: secret, issuer: "i", audience: "a", lifetime: .seconds(600))
            headers[.authorization] = "Bearer \(token)"
            if caller != .stranger { headers[ServiceToken.header] = serviceToken.value }
        }
        if testCase.conditional {
            let page = try await store.purchases(
                username: "joe", userid: nil, limit: PurchaseListLimit.default + 1, after: nil)
            headers[.ifNoneMatch] = PageTag(documents: page).description
        }
        let requestHeaders = headers
        let app = Application(
            router: buildRouter(
                store: store, status: status, auth: auth, failure: { broken ? "Kafka consumer: fenced" : nil }))
        try await app.test(.router) { client in
            try await client.execute(uri: testCase.uri, method: .get, headers: requestHeaders) { response in
                #expect(Int(response.status.code) == testCase.status)
                try Self.document.check(response, operation: testCase.operation)
            }
        }
    }
}
