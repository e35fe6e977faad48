import Events
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import Yams

@testable import CMServer
@testable import Kafka

/// `openapi.yaml` and the router agree: the same operations, and every documented response is
/// one the code gives, in the documented media type and with the documented required fields.
@Suite struct OpenAPIAgreementTests {
    typealias Object = [String: Any]

    static var document: Object {
        let text = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
        return (try? Yams.load(yaml: text)) as? Object ?? [:]
    }

    static var operations: [String: Object] {
        var result: [String: Object] = [:]
        for case let (path, item as Object) in document["paths"] as? Object ?? [:] {
            for case let (method, operation as Object) in item {
                result["\(method.uppercased()) \(path)"] = operation
            }
        }
        return result
    }

    /// One request and the documented operation it exercises.
    struct Case: Sendable, CustomStringConvertible {
        var operation: String
        var uri: String
        var headers: HTTPFields = [:]
        var body: String?
        /// The publisher fails (503) / the fake cm-api's behaviour.
        var kafkaDown = false
        var cmAPI: FakeCMAPI.Behaviour? = nil

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
        Case(operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe?limit=0", cmAPI: .page(page)),
        Case(
            operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe",
            cmAPI: .status(.internalServerError, "{}")),
        Case(operation: "GET /getAllUserBuys/{username}", uri: "/getAllUserBuys/joe", cmAPI: .slow(.seconds(3))),
        Case(operation: "GET /healthz", uri: "/healthz"),
        Case(operation: "GET /readyz", uri: "/readyz"),
        Case(operation: "GET /readyz", uri: "/readyz", kafkaDown: true),
        Case(operation: "GET /metrics", uri: "/metrics"),
        Case(operation: "GET /openapi.yaml", uri: "/openapi.yaml"),
    ]

    @Test func theDocumentIsOpenAPI3WithOperations() {
        #expect((Self.document["openapi"] as? String)?.hasPrefix("3.") == true)
        #expect(Self.operations.count >= 6)
    }

    @Test func theRouterHasExactlyTheDocumentedOperations() {
        let router = buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable)
        let routed = Set(
            router.routes.map { "\($0.method) \($0.path.description.hasPrefix("/") ? "" : "/")\($0.path)" })
        #expect(routed == Set(Self.operations.keys))
    }

    @Test func everyDocumentedResponseIsExercisedHere() {
        var documented: Set<String> = []
        for (name, operation) in Self.operations {
            for status in (operation["responses"] as? Object ?? [:]).keys { documented.insert("\(name) \(status)") }
        }
        let exercised = Set(Self.expectedStatuses.map { "\($0.0) \($0.1)" })
        #expect(documented == exercised)
    }

    /// What each case answers; checked against the router below.
    static let expectedStatuses: [(String, Int)] = [
        ("POST /buy", 200), ("POST /buy", 200), ("POST /buy", 400), ("POST /buy", 413), ("POST /buy", 415),
        ("POST /buy", 422), ("POST /buy", 503),
        ("GET /getAllUserBuys/{username}", 200), ("GET /getAllUserBuys/{username}", 400),
        ("GET /getAllUserBuys/{username}", 502), ("GET /getAllUserBuys/{username}", 504),
        ("GET /healthz", 200), ("GET /readyz", 200), ("GET /readyz", 503), ("GET /metrics", 200),
        ("GET /openapi.yaml", 200),
    ]

    @Test(arguments: zip(cases, expectedStatuses.map(\.1)))
    func theAnswerIsDocumented(_ testCase: Case, status expected: Int) async throws {
        #expect(Self.operations[testCase.operation] != nil, "\(testCase.operation) is documented")
        let publisher = InMemoryPublisher()
        if testCase.kafkaDown {
            publisher.failNext(
                with: KafkaError(code: .timedOut, message: "Local: Message timed out", isRetriable: true))
        }
        let fake = FakeCMAPI(testCase.cmAPI ?? .page(PurchaseListPage(purchases: [], nextCursor: nil)))
        try await fake.serving { host in
            let lists = PurchaseListClient(http: .shared, host: host, timeout: .milliseconds(500))
            let app = Application(router: buildRouter(publisher: publisher, purchaseLists: lists))
            try await app.test(.router) { client in
                let method = HTTPRequest.Method(String(testCase.operation.split(separator: " ")[0]))!
                try await client.execute(
                    uri: testCase.uri, method: method, headers: testCase.headers,
                    body: testCase.body.map { ByteBuffer(string: $0) }
                ) { response in
                    #expect(Int(response.status.code) == expected)
                    let responses = Self.operations[testCase.operation]?["responses"] as? Object ?? [:]
                    let documented = try #require(
                        responses[String(response.status.code)] as? Object,
                        "status \(response.status.code) is documented")
                    try Self.check(response, against: documented)
                }
            }
        }
    }

    /// The media type is a documented one; a JSON body has the required fields of its schema
    /// (of one of them, for `oneOf`); documented headers are present.
    static func check(_ response: TestResponse, against documented: Object) throws {
        for header in (documented["headers"] as? Object ?? [:]).keys {
            #expect(response.headers[HTTPField.Name(header)!] != nil, "header \(header)")
        }
        let content = documented["content"] as? Object ?? [:]
        let mediaType = String(response.headers[.contentType]?.split(separator: ";").first ?? "")
        let entry = try #require(content[mediaType] as? Object, "media type \(mediaType) is documented")
        guard mediaType == "application/json" else { return }
        let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body))
        let schema = resolve(entry["schema"] as? Object ?? [:])
        let alternatives = (schema["oneOf"] as? [Object])?.map(resolve) ?? [schema]
        let satisfied = alternatives.contains { alternative in
            let required = alternative["required"] as? [String] ?? []
            guard let object = body as? Object else { return false }
            return required.allSatisfy { object[$0] != nil }
        }
        #expect(satisfied, "the body has the required fields of \(alternatives.map { $0["required"] ?? [] })")
    }

    static func resolve(_ schema: Object) -> Object {
        guard let reference = schema["$ref"] as? String else { return schema }
        let name = reference.split(separator: "/").last.map(String.init) ?? ""
        let schemas = (document["components"] as? Object)?["schemas"] as? Object
        return schemas?[name] as? Object ?? [:]
    }
}
