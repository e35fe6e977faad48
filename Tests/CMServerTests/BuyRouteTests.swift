import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@_spi(Testing) import Kafka
import PurchaseDomain
import PurchaseWire
import Synchronization
import Testing

@testable import CMServer

let originalBody = #"{"username":"joe","userid":"005","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}"#
let jsonHeaders: HTTPFields = [.contentType: "application/json"]

func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
}

@Suite struct BuyRouteTests {
    let publisher = InMemoryPublisher()
    var app: some ApplicationProtocol {
        Application(router: buildRouter(publisher: publisher, purchaseLists: .unreachable, receipts: publisher))
    }

    @Test func theOriginalClientsCallIsAcknowledgedWithWhereKafkaStoredIt() async throws {
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
            ) {
                response in
                #expect(response.status == .ok)
                let answer = try json(response.body)
                #expect(answer["status"] as? String == "Ok!")
                #expect(answer["message"] as? String == "Message successfully sent to Kafka!")
                #expect(answer["partition"] as? Int == 2)
                #expect(answer["offset"] as? Int == 0)
                let id = try #require(answer["purchaseId"] as? String)
                #expect(self.publisher.events.map { $0.purchaseId.uuidString.lowercased() } == [id])
            }
        }
        let event = try #require(publisher.events.first)
        #expect(event.purchase.username == "joe")
        #expect(event.purchase.price.description == "1195.30")
        #expect(event.kafkaKey == Array("005".utf8))
        #expect(event.purchase.timestamp.description == "2024-05-31T15:54:32.204Z")
    }

    @Test func priceAsANumberAndAMissingTimestampAreAccepted() async throws {
        let before = Date().timeIntervalSince1970 * 1000
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: [.contentType: "application/json; charset=utf-8"],
                body: ByteBuffer(string: #"{"username":"joe","userid":"005","price":1195.3}"#)
            ) { response in
                #expect(response.status == .ok)
            }
        }
        let event = try #require(publisher.events.first)
        #expect(event.purchase.price.hundredths == 119_530)
        #expect(Double(event.purchase.timestamp.millisecondsSinceEpoch) >= before.rounded(.down))
        #expect(event.purchase.timestamp == event.receivedAt)
    }

    /// Lists are newest first by the purchase's own time: one dated far ahead would stay on top.
    @Test func aTimestampPastTheConfiguredWindowIsRefusedNamingTheFieldAndNothingIsPublished() async throws {
        let app = Application(
            router: buildRouter(
                publisher: publisher, purchaseLists: .unreachable,
                timestampRule: TimestampRule(maximumFuture: .seconds(3600))))
        let inTwoHours = Timestamp(millisecondsSinceEpoch: Timestamp.now.millisecondsSinceEpoch + 7_200_000)
        let inHalfAnHour = Timestamp(millisecondsSinceEpoch: Timestamp.now.millisecondsSinceEpoch + 1_800_000)
        try await app.test(.router) { client in
            for (timestamp, status) in [
                (inTwoHours.description, HTTPResponse.Status.unprocessableContent),
                ("1969-12-31T23:59:59Z", .unprocessableContent), (inHalfAnHour.description, .ok),
            ] {
                let body = #"{"username":"joe","userid":"005","price":"1.00","timestamp":"\#(timestamp)"}"#
                try await client.execute(
                    uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: body)
                ) { response in
                    #expect(response.status == status, "\(timestamp)")
                    if status != .ok {
                        let errors = try json(response.body)["errors"] as? [[String: String]]
                        #expect(errors?.map { $0["field"] } == ["timestamp"])
                    }
                }
            }
        }
        #expect(publisher.events.map(\.purchase.timestamp) == [inHalfAnHour])
    }

    /// draft-ietf-httpapi-idempotency-key-header: the same key with the same request answers what
    /// the first answered, without a second event; the same key with another request is a 422
    /// naming the key, and nothing is produced.
    @Test func aReusedIdempotencyKeyReplaysTheSameRequestAndRefusesAnother() async throws {
        func post(_ body: String, key: String = "key-1") async throws -> (HTTPResponse.Status, [String: Any], String?) {
            var keyed = jsonHeaders
            keyed[.idempotencyKey] = key
            let headers = keyed
            return try await app.test(.router) { client in
                try await client.execute(uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: body)) {
                    ($0.status, try json($0.body), $0.headers[.idempotentReplayed])
                }
            }
        }
        let (status, first, replayedFirst) = try await post(originalBody)
        #expect(status == .ok && replayedFirst == nil)
        let (again, second, replayed) = try await post(originalBody)
        #expect(again == .ok && replayed == "true")
        for field in ["purchaseId", "partition", "offset", "status", "message"] {
            #expect("\(first[field] ?? "-")" == "\(second[field] ?? "-")", "\(field)")
        }
        let other = originalBody.replacing(#""price":"1195.30""#, with: #""price":"1.00""#)
        let (refused, error, _) = try await post(other)
        #expect(refused == .unprocessableContent)
        #expect((error["errors"] as? [[String: String]])?.map { $0["field"] } == ["Idempotency-Key"])
        #expect(publisher.events.count == 1, "neither the retry nor the reuse produced anything")
        #expect(publisher.events.first?.idempotencyFingerprint != nil)

        // Without a timestamp the server's time is the purchase's: a retry is still the same request.
        let untimed = #"{"username":"joe","userid":"005","price":"2.00"}"#
        #expect(try await post(untimed, key: "key-2").0 == .ok)
        #expect(try await post(untimed, key: "key-2").2 == "true")
        #expect(publisher.events.count == 2)
    }

    /// Before the first purchase is stored cm-server cannot know it: the reuse is produced (and
    /// the ingest, which meets both in the same partition, dead-letters the later one), as it is
    /// when cm-api cannot be asked.
    @Test func aKeyWhoseFirstPurchaseIsNotStoredYetIsProducedWithItsFingerprint() async throws {
        publisher.storing.store(false, ordering: .relaxed)
        var keyed = jsonHeaders
        keyed[.idempotencyKey] = "key-3"
        let headers = keyed
        let unreachable = Application(router: buildRouter(publisher: publisher, purchaseLists: .unreachable))
        for app in [app, unreachable] as [any ApplicationProtocol] {
            try await app.test(.router) { client in
                try await client.execute(
                    uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: originalBody)
                ) {
                    #expect($0.status == .ok && $0.headers[.idempotentReplayed] == nil)
                }
            }
        }
        #expect(publisher.events.count == 2)
        #expect(Set(publisher.events.map(\.purchaseId)).count == 1)
        #expect(Set(publisher.events.compactMap(\.idempotencyFingerprint)).count == 1)
    }

    @Test func dryRunValidatesWithoutPublishing() async throws {
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy?dryRun=true", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
            ) { response in
                #expect(response.status == .ok)
                let answer = try json(response.body)
                #expect(answer["message"] as? String == "Valid purchase (dry run, not sent)")
            }
            try await client.execute(
                uri: "/buy?dryRun=true", method: .post, headers: jsonHeaders, body: ByteBuffer(string: "{}")
            ) { response in
                #expect(response.status == .unprocessableContent)
            }
        }
        #expect(publisher.events.isEmpty)
    }

    /// A dry run asked for with a value the server does not understand is refused, never taken
    /// as a real purchase; the reason comes with the body's own.
    @Test(arguments: ["yes", "1", "TRUE", ""])
    func aDryRunValueOtherThanTrueOrFalseIsRefused(value: String) async throws {
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy?dryRun=\(value)", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
            ) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try json(response.body)["errors"] as? [[String: String]]
                #expect(errors == [["field": "dryRun", "reason": "must be true or false"]])
            }
            try await client.execute(
                uri: "/buy?dryRun=\(value)", method: .post, headers: jsonHeaders, body: ByteBuffer(string: "{}")
            ) { response in
                let fields = (try json(response.body)["errors"] as? [[String: String]])?.compactMap { $0["field"] }
                #expect(fields == ["username", "userid", "price", "dryRun"])
            }
        }
        #expect(publisher.events.isEmpty)
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy?dryRun=false", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
            ) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(publisher.events.count == 1, "dryRun=false is a real purchase")
    }

    @Test func theSameIdempotencyKeyFromTheSameUserGivesTheSamePurchaseId() async throws {
        let ids = try await app.test(.router) { client in
            var ids: [String] = []
            for (key, body) in [("k-1", originalBody), ("k-1", originalBody), ("k-2", originalBody)] {
                var headers = jsonHeaders
                headers[.idempotencyKey] = key
                ids.append(
                    try await client.execute(
                        uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: body)
                    ) {
                        try json($0.body)["purchaseId"] as? String ?? ""
                    }
                )
            }
            return ids
        }
        #expect(ids[0] == ids[1])
        #expect(ids[0] != ids[2])
        #expect(publisher.events.count == 2, "the retry was answered from the stored purchase, not produced again")
        #expect(
            ids[0] == UUID.purchaseID(userid: "005", idempotencyKey: try IdempotencyKey("k-1")).uuidString.lowercased())
    }

    @Test(
        arguments: [
            (nil, 415), ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("application/jsonx", 415),
            ("APPLICATION/JSON", 200),
        ] as [(String?, Int)])
    func onlyJSONIsAccepted(_ contentType: String?, status: Int) async throws {
        var fields: HTTPFields = [:]
        if let contentType { fields[.contentType] = contentType }
        let headers = fields
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: originalBody)
            ) {
                response in
                #expect(response.status.code == status)
                if status == 415 {
                    let answer = try json(response.body)
                    #expect(answer["status"] as? String == "Error")
                }
            }
        }
        #expect(publisher.events.count == (status == 200 ? 1 : 0))
    }

    /// Content-Type names one media type (RFC 9110 §8.3): two fields, even both JSON, are not a
    /// JSON body. The route reads them joined, as `HTTPFields`' subscript joins them.
    @Test func twoContentTypesAreRefused() async throws {
        var fields: HTTPFields = [.contentType: "application/json"]
        fields.append(HTTPField(name: .contentType, value: "application/json"))
        let headers = fields
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: originalBody)
            ) { response in
                #expect(response.status.code == 415)
            }
        }
        #expect(publisher.events.isEmpty)
    }

    @Test func malformedJSONIs400() async throws {
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: "{\"username\":")
            ) {
                response in
                #expect(response.status == .badRequest)
                let answer = try json(response.body)
                #expect((answer["message"] as? String)?.hasPrefix("Malformed JSON") == true)
                #expect((answer["errors"] as? [Any])?.isEmpty == true)
            }
        }
        #expect(publisher.events.isEmpty)
    }

    @Test func aBodyOver16KiBIs413() async throws {
        let padding = String(repeating: "x", count: 16 * 1024)
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders,
                body: ByteBuffer(string: #"{"username":"joe","userid":"005","price":"1.00","pad":"\#(padding)"}"#)
            ) { response in
                #expect(response.status == .contentTooLarge)
                let answer = try json(response.body)
                #expect(answer["status"] as? String == "Error")
            }
        }
        #expect(publisher.events.isEmpty)
    }

    /// The limit is the contract's 16 KiB exactly: a body of 16,384 bytes is read, one byte more
    /// is refused before it is parsed.
    @Test(arguments: [(16 * 1024, 200), (16 * 1024 + 1, 413)])
    func theBodyLimitIs16KiBExactly(size: Int, status: Int) async throws {
        let purchase = #"{"username":"joe","userid":"005","price":"1.00"}"#
        let body = purchase + String(repeating: " ", count: size - purchase.utf8.count)
        try await app.test(.router) { client in
            try await client.execute(uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: body)) {
                response in
                #expect(response.status.code == status)
            }
        }
        #expect(publisher.events.count == (status == 200 ? 1 : 0))
    }

    @Test func anInvalidPurchaseIs422WithAReasonPerField() async throws {
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders,
                body: ByteBuffer(
                    string: #"{"username":{"$gt":""},"userid":"","price":"1.005","timestamp":"2024-05-31"}"#)
            ) { response in
                #expect(response.status == .unprocessableContent)
                let answer = try json(response.body)
                #expect(answer["status"] as? String == "Error")
                let errors = try #require(answer["errors"] as? [[String: String]])
                #expect(errors.map { $0["field"] } == ["username", "userid", "price", "timestamp"])
                #expect(errors.allSatisfy { !($0["reason"] ?? "").isEmpty })
            }
        }
        #expect(publisher.events.isEmpty)
    }

    @Test func aBadIdempotencyKeyIs422() async throws {
        var fields = jsonHeaders
        fields[.idempotencyKey] = "has spaces in it"
        let headers = fields
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: originalBody)
            ) {
                response in
                #expect(response.status == .unprocessableContent)
                let answer = try json(response.body)
                let errors = try #require(answer["errors"] as? [[String: String]])
                #expect(errors.first?["field"] == "Idempotency-Key")
            }
        }
        #expect(publisher.events.isEmpty)
    }

    @Test func aBrokerThatDoesNotAcknowledgeGives503WithRetryAfter() async throws {
        publisher.failNext(
            with: KafkaError(forTesting: .timedOut, message: "Local: Message timed out", isRetriable: true))
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/buy", method: .post, headers: jsonHeaders, body: ByteBuffer(string: originalBody)
            ) {
                response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "1")
                let answer = try json(response.body)
                #expect(answer["status"] as? String == "Error")
                #expect((answer["message"] as? String)?.contains("Idempotency-Key") == true)
                #expect((answer["message"] as? String)?.contains("not stored") == true)
                #expect(answer["possiblyPersisted"] as? Bool == false)
                #expect((answer["purchaseId"] as? String).flatMap(UUID.init(uuidString:)) != nil)
            }
        }
        #expect(publisher.events.isEmpty)
    }

    @Test func aPossiblyPersistedFailureSaysSoAndNamesThePurchaseId() async throws {
        let error = KafkaError(
            forTesting: .timedOut, message: "Local: Message timed out", isRetriable: true, possiblyPersisted: true)
        publisher.failNext(with: error)
        let key = "retry-me-7"
        try await app.test(.router) { client in
            var headers = jsonHeaders
            headers[.idempotencyKey] = key
            try await client.execute(
                uri: "/buy", method: .post, headers: headers, body: ByteBuffer(string: originalBody)
            ) { response in
                #expect(response.status == .serviceUnavailable)
                let answer = try json(response.body)
                #expect(answer["possiblyPersisted"] as? Bool == true)
                #expect((answer["message"] as? String)?.contains("may have been stored") == true)
                let expected = UUID.purchaseID(userid: "005", idempotencyKey: try IdempotencyKey(key))
                #expect(answer["purchaseId"] as? String == expected.uuidString.lowercased())
            }
        }
    }

    @Test func livenessIsSuccessAndReadinessFollowsKafka() async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "Success")
            }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            self.publisher.failNext(
                with: KafkaError(forTesting: .brokersUnavailable, message: "all brokers down", isRetriable: true))
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let answer = try json(response.body)
                #expect((answer["message"] as? String)?.contains("all brokers down") == true)
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
        }
    }
}
