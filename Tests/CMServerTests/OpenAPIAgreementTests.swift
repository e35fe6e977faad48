import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@_spi(Testing) import Kafka
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopTestSupport
import Testing

@testable import CMServer

/// `openapi.yaml` and the router agree: the same operations, and every documented response is
/// one the code gives, in the documented media type and with the documented required fields.
@Suite struct OpenAPIAgreementTests {
    static let document = OpenAPIDocument(yaml: PackageResources.openapi_yaml)

    /// One request and the documented operation it exercises.
    struct Case: Sendable, CustomStringConvertible {
        var operation: String
        var uri: String
        var headers: HTTPFields = [:]
        var body: String?
        /// The publisher fails (503) / the fake cm-api's behaviour.
        var kafkaDown = false
        var cmAPI: FakeCMAPI.Behaviour? = nil
        /// The publisher is broken for good (a fatal Kafka error).
        var broken = false
        /// AUTH_MODE=jwt, with a rate limit of one request: who calls (see `Caller`).
        var caller: Caller? = nil

        enum Caller: Sendable {
            /// No token.
            case anonymous
            /// joe (userid 005), the user of `originalBody`.
            case joe
            /// bob, who is not joe.
            case bob
            /// joe, on his second request: the limit's 429.
            case joeAgain
        }

        var description: String { "\(operation) \(uri)" }
    }

    static let json: HTTPFields = [.contentType: "application/json"]
    static let page = PurchaseListPage(purchases: PurchaseListRouteTests.joe, nextCursor: "next")

    static let cases: [Case] = [
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: originalBody),
        Case(operation: "POST /buy", uri: "/buy?dryRun=true", headers: json, body: originalBody),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: "{"),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: String(repeating: " ", count: 17 * 1024)),
        Case(operation: "POST /buy", uri: "/buy", headers: [.contentType: "text/plain"], body: originalBody),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: #"{"username":""}"#),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: originalBody, kafkaDown: true),
        Case(operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe", cmAPI: .page(page)),
        Case(
            operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe",
            headers: [.ifNoneMatch: FakeCMAPI.tag(of: page)], cmAPI: .page(page)),
        Case(operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe?limit=0", cmAPI: .page(page)),
        Case(
            operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe",
            cmAPI: .status(.internalServerError, "{}")),
        Case(operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe", cmAPI: .slow(.seconds(30))),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: originalBody, caller: .anonymous),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: originalBody, caller: .bob),
        Case(operation: "POST /buy", uri: "/buy", headers: json, body: originalBody, caller: .joeAgain),
        Case(
            operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe", cmAPI: .page(page),
            caller: .anonymous),
        Case(
            operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe", cmAPI: .page(page),
            caller: .joeAgain),
        Case(operation: "GET /healthz", uri: "/healthz"),
        Case(operation: "GET /healthz", uri: "/healthz", broken: true),
        Case(operation: "GET /readyz", uri: "/readyz"),
        Case(operation: "GET /readyz", uri: "/readyz", kafkaDown: true),
        Case(operation: "GET /metrics", uri: "/metrics"),
        Case(operation: "GET /openapi.yaml", uri: "/openapi.yaml"),
        Case(operation: "GET /", uri: "/", headers: [.accept: "text/html,application/xhtml+xml"]),
        Case(operation: "GET /", uri: "/", headers: [.accept: "application/json"]),
        Case(operation: "GET /shop.js", uri: "/shop.js"),
        Case(operation: "GET /shop.css", uri: "/shop.css"),
    ]

    @Test func theDocumentIsOpenAPI3WithOperations() {
        #expect(Self.document.version?.hasPrefix("3.") == true)
        #expect(Self.document.operations.count >= 6)
    }

    @Test func theRouterHasExactlyTheDocumentedOperations() {
        let router = buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable)
        // A route that ends in `/**` is its operation's own for a username whose %2F a proxy
        // decoded (PurchaseListRoutes).
        let routed = Set(
            router.routes.map {
                "\($0.method) \($0.path.description.hasPrefix("/") ? "" : "/")\($0.path)"
                    .replacing("/**", with: "")
            })
        #expect(routed == Self.document.operations)
        #expect(router.routes.filter { $0.path.description.hasSuffix("/**") }.count == 1)
    }

    @Test func everyDocumentedResponseIsExercisedHere() {
        #expect(Self.document.responses == Set(Self.expectedStatuses.map { "\($0.0) \($0.1)" }))
    }

    /// What each case answers; checked against the router below.
    static let expectedStatuses: [(String, Int)] = [
        ("POST /buy", 200), ("POST /buy", 200), ("POST /buy", 400), ("POST /buy", 413), ("POST /buy", 415),
        ("POST /buy", 422), ("POST /buy", 503),
        ("GET /getAllUserBuys/{username}", 200), ("GET /getAllUserBuys/{username}", 304),
        ("GET /getAllUserBuys/{username}", 400), ("GET /getAllUserBuys/{username}", 502),
        ("GET /getAllUserBuys/{username}", 504),
        ("POST /buy", 401), ("POST /buy", 403), ("POST /buy", 429),
        ("GET /getAllUserBuys/{username}", 401),
        ("GET /getAllUserBuys/{username}", 429),
        ("GET /healthz", 200), ("GET /healthz", 503), ("GET /readyz", 200), ("GET /readyz", 503), ("GET /metrics", 200),
        ("GET /openapi.yaml", 200), ("GET /", 200), ("GET /", 200), ("GET /shop.js", 200), ("GET /shop.css", 200),
    ]

    @Test(arguments: zip(cases, expectedStatuses.map(\.1)))
    func theAnswerIsDocumented(_ testCase: Case, status expected: Int) async throws {
        #expect(Self.document.operations.contains(testCase.operation))
        let publisher = InMemoryPublisher()
        if testCase.kafkaDown {
            publisher.failNext(
                with: KafkaError(forTesting: .timedOut, message: "Local: Message timed out", isRetriable: true))
        }
        if testCase.broken { publisher.failForGood("Kafka producer: fenced") }
        let fake = FakeCMAPI(testCase.cmAPI ?? .page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await fake.serving { host in
            // Generous for the answers (all suites start at once and the machine is busy), short
            // next to the slow case's 30 s.
            let lists = PurchaseListClient(http: .shared, host: host, timeout: .seconds(5))
            var auth = RouteAuth.none
            var limits = RateLimitSettings.unlimited
            var headers = testCase.headers
            if let caller = testCase.caller {
                let secret = String(repeating: "s", count: 32)
                auth = RouteAuth(
                    verifier: try await TokenVerifier(
                        settings: AuthSettings(mode: .jwt, keys: .hmac(secret: secret), issuer: "i", audience: "a")))
                limits = RateLimitSettings(buy: .init(perSecond: 1, burst: 1), lists: .init(perSecond: 1, burst: 1))
                let who: ShopPrincipal? =
                    switch caller {
                    case .anonymous: nil
                    case .joe, .joeAgain: ShopPrincipal(userid: "005", username: "joe")
                    case .bob: ShopPrincipal(userid: "006", username: "bob")
                    }
                if let who {
                    let token = try await TokenMinter.token(
                        for: who, secret: secret, issuer: "i", audience: "a", lifetime: .seconds(600))
                    headers[.authorization] = "Bearer \(token)"
                }
            }
            let requestHeaders = headers
            let app = Application(
                router: buildRouter(publisher: publisher, purchaseLists: lists, auth: auth, rateLimits: limits))
            try await app.test(.router) { client in
                let method = HTTPRequest.Method(String(testCase.operation.split(separator: " ")[0]))!
                if testCase.caller == .joeAgain {
                    try await client.execute(
                        uri: testCase.uri, method: method, headers: requestHeaders,
                        body: testCase.body.map { ByteBuffer(string: $0) }
                    ) { response in #expect(response.status == .ok) }
                }
                try await client.execute(
                    uri: testCase.uri, method: method, headers: requestHeaders,
                    body: testCase.body.map { ByteBuffer(string: $0) }
                ) { response in
                    #expect(Int(response.status.code) == expected)
                    try Self.document.check(response, operation: testCase.operation)
                }
            }
        }
    }
}
