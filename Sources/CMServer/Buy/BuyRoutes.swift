import Foundation
import HTTPTypes
import Hummingbird
import Kafka
import Metrics
import NIOCore
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopHTTP

/// `POST /buy`: validates a purchase and answers only after Kafka acknowledged it.
struct BuyRoutes<Publisher: PurchasePublisher> {
    let publisher: Publisher
    /// Asked before a keyed purchase is produced (see ``PurchaseReceipts``).
    let receipts: any PurchaseReceipts
    let rateLimiter: RateLimiter
    let timestampRule: TimestampRule
    /// What keyed purchases found when cm-api was asked: `replayed` (the same request, answered
    /// as the first was), `conflict` (the key reused for another purchase: 422), `not_stored`
    /// (produced), `lookup_failed` (produced; the ingest catches a reuse).
    let idempotencyOutcomes = Dictionary(
        uniqueKeysWithValues: ["replayed", "conflict", "not_stored", "lookup_failed"].map {
            ($0, Counter(label: "purchase_idempotency_lookups_total", dimensions: [("outcome", $0)]))
        })
    /// From handing the event to the producer to the broker's ack (or the failure).
    let produceAcknowledged = Timer(label: "kafka_produce_duration_seconds", dimensions: [("result", "acked")])
    let produceFailed = Timer(label: "kafka_produce_duration_seconds", dimensions: [("result", "failed")])

    init(
        publisher: Publisher, receipts: any PurchaseReceipts,
        rateLimiter: RateLimiter = RateLimiter(settings: .unlimited),
        timestampRule: TimestampRule = TimestampRule()
    ) {
        self.publisher = publisher
        self.receipts = receipts
        self.rateLimiter = rateLimiter
        self.timestampRule = timestampRule
    }
    /// Bodies larger than this are refused with 413 (the contract's 16 KiB).
    static var maximumBodyBytes: Int { 16 * 1024 }
    /// What a 503 tells clients to wait before retrying, in seconds.
    static var retryAfterSeconds: Int { 1 }

    func addRoutes(to router: RouterGroup<AppRequestContext>) {
        router.post("buy") { request, context in
            try await rateLimiter.limited(.buy, request: request, context: context) {
                try await buy(request: request, context: context)
            }
        }
    }

    private func buy(request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        guard Self.isJSON(request.headers.value(of: .contentType)) else {
            return .error(.unsupportedMediaType, "Content-Type must be application/json")
        }
        let body: ByteBuffer
        do {
            body = try await request.readBody(upTo: Self.maximumBodyBytes)
        } catch is NIOTooManyBytesError {
            return .error(.contentTooLarge, "Request body is larger than \(Self.maximumBodyBytes) bytes")
        }
        let receivedAt = Timestamp.now
        let submitted: PurchaseRequest
        let idempotencyKey: IdempotencyKey?
        // Anything but true or false is refused: `?dryRun=yes` must not quietly buy for real.
        var dryRun = false
        var dryRunError: [FieldError] = []
        // Without a query (every real purchase) there is nothing to parse.
        switch request.uri.query == nil ? nil : request.uri.queryParameters["dryRun"] {
        case nil, "false": dryRun = false
        case "true": dryRun = true
        default: dryRunError = [FieldError(field: "dryRun", reason: "must be true or false")]
        }
        do throws(PurchaseDecodingError) {
            submitted = try PurchaseRequest(
                json: Array(buffer: body), receivedAt: receivedAt, timestampRule: timestampRule)
            idempotencyKey = try request.headers.value(of: .idempotencyKey).map { key throws(PurchaseDecodingError) in
                try IdempotencyKey(key)
            }
            if !dryRunError.isEmpty { throw .invalid(dryRunError) }
        } catch {
            switch error {
            case .malformedJSON(let reason): return .error(.badRequest, "Malformed JSON: \(reason)")
            case .invalid(let errors):
                let all = errors.contains(dryRunError) ? errors : errors + dryRunError
                return .error(.unprocessableContent, "Invalid purchase", errors: all)
            }
        }
        let purchase = submitted.purchase
        // With AUTH_MODE=jwt, one buys only as oneself (a dry run included: it validates exactly
        // as a purchase would be).
        if let refusal = context.identity?.refusal(toBuy: purchase) {
            return .forbidden("A purchase can only be made as the signed-in user", errors: refusal)
        }
        if dryRun {
            return .json(.ok, bytes: DryRunAnswer.json)
        }
        let purchaseId: UUID
        var fingerprint: IdempotencyFingerprint?
        if let idempotencyKey {
            purchaseId = UUID.purchaseID(userid: purchase.userid, idempotencyKey: idempotencyKey)
            let requested = submitted.fingerprint
            fingerprint = requested
            if let answer = await answerFromTheFirst(
                purchaseId: purchaseId, request: submitted, fingerprint: requested, context: context,
                authorization: request.headers.value(of: .authorization))
            {
                return answer
            }
        } else {
            purchaseId = .randomPurchaseID()
        }
        let event = PurchaseEvent(
            purchaseId: purchaseId, purchase: purchase, receivedAt: receivedAt, idempotencyFingerprint: fingerprint)
        let start = DispatchTime.now()
        do {
            let report = try await publisher.publish(event)
            produceAcknowledged.recordInterval(since: start)
            return .json(.ok, bytes: BuyAnswer(purchaseId: purchaseId, report: report).json)
        } catch {
            produceFailed.recordInterval(since: start)
            Counter(label: "kafka_delivery_failures_total", dimensions: [("error", error.code.description)]).increment()
            // Refusals while every broker is down or the topic is missing come at request rate;
            // the producer and the topic watch have already logged the cause itself.
            context.logger.log(
                level: error.code == .brokersUnavailable || error.code == .unknownTopic ? .debug : .warning,
                "purchase not acknowledged by Kafka",
                metadata: ["purchaseId": "\(purchaseId.lowercasedString)", "error": "\(error.message)"]
            )
            var response = Response.json(
                .serviceUnavailable,
                UnacknowledgedAnswer(purchaseId: purchaseId, possiblyPersisted: error.possiblyPersisted)
            )
            response.headers[.retryAfter] = String(Self.retryAfterSeconds)
            return response
        }
    }

    /// For a keyed purchase whose purchaseId is already stored: the first answer again (the same
    /// request: a retry) or a 422 (the key used for another purchase), and nothing produced.
    /// `nil` when nothing is stored under it yet, or cm-api could not say: the purchase is then
    /// produced, and a reuse that races the first is caught where the two meet, in the ingest,
    /// which dead-letters the later one (docs/CONTRACT.md, "Idempotency").
    private func answerFromTheFirst(
        purchaseId: UUID, request: PurchaseRequest, fingerprint: IdempotencyFingerprint, context: AppRequestContext,
        authorization: String?
    ) async -> Response? {
        let stored: StoredReceipt?
        do {
            stored = try await receipts.receipt(of: purchaseId, authorization: authorization)
        } catch {
            idempotencyOutcomes["lookup_failed"]?.increment()
            // At request rate while cm-api is down: the counter, cm-api's own alerts and the
            // list's 502s say so; one line per purchase would drown the log.
            context.logger.debug(
                "could not ask cm-api whether a keyed purchase is stored; producing it",
                metadata: ["purchaseId": "\(purchaseId.lowercasedString)", "error": "\(error)"])
            return nil
        }
        guard let stored else {
            idempotencyOutcomes["not_stored"]?.increment()
            return nil
        }
        guard
            IdempotencyFingerprint.isSameRequest(
                stored: (stored.fingerprint, stored.purchase), as: request.purchase, fingerprint: fingerprint)
        else {
            idempotencyOutcomes["conflict"]?.increment()
            return .error(
                .unprocessableContent, "This Idempotency-Key was already used for another purchase",
                errors: [
                    FieldError(
                        field: "Idempotency-Key",
                        reason:
                            "was used for a different purchase (purchaseId \(purchaseId.lowercasedString)); "
                            + "send a new key for a new purchase")
                ])
        }
        idempotencyOutcomes["replayed"]?.increment()
        let report = KafkaDeliveryReport(topic: "", partition: stored.partition, offset: stored.offset)
        var response = Response.json(.ok, bytes: BuyAnswer(purchaseId: purchaseId, report: report).json)
        response.headers[.idempotentReplayed] = "true"
        return response
    }

    /// `application/json` in any case, with or without parameters such as `charset` and spaces
    /// around it. Compared byte by byte in the string's own storage: splitting, trimming and
    /// lowercasing cost allocations on every purchase, and indexing a `String.UTF8View` costs more
    /// than the comparison (callgrind: about 1,200 instructions against about 300 here).
    static func isJSON(_ contentType: String?) -> Bool {
        guard var contentType else { return false }
        contentType.makeContiguousUTF8()
        return contentType.utf8.withContiguousStorageIfAvailable(isJSON) ?? false
    }

    private static func isJSON(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var index = 0
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
        for expected in "application/json".utf8 {
            guard index < bytes.count else { return false }
            let byte = bytes[index]
            let lower = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
            guard lower == expected else { return false }
            index += 1
        }
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
        return index == bytes.count || bytes[index] == UInt8(ascii: ";")
    }
}

/// The 200 of `POST /buy`, written by hand (every field is ASCII the server chose):
/// `{"status":"Ok!","message":"Message successfully sent to Kafka!","purchaseId","partition","offset"}`.
struct BuyAnswer {
    var purchaseId: UUID
    var report: KafkaDeliveryReport

    var json: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(160)
        JSONText.append(#"{"status":"Ok!","message":"Message successfully sent to Kafka!","purchaseId":""#, to: &output)
        purchaseId.appendLowercased(to: &output)
        JSONText.append(#"","partition":"#, to: &output)
        output.append(contentsOf: String(report.partition).utf8)
        JSONText.append(#","offset":"#, to: &output)
        output.append(contentsOf: String(report.offset).utf8)
        output.append(UInt8(ascii: "}"))
        return output
    }
}

/// The 503 of `POST /buy`: the contract's error shape, plus the purchaseId that was tried and
/// whether librdkafka reports the message as possibly stored anyway (it was sent and no answer
/// came back). A retry with the same Idempotency-Key then stores it at most once.
struct UnacknowledgedAnswer: Encodable {
    var status = "Error"
    var message: String
    var errors: [FieldError] = []
    var purchaseId: String
    var possiblyPersisted: Bool

    init(purchaseId: UUID, possiblyPersisted: Bool) {
        self.purchaseId = purchaseId.lowercasedString
        self.possiblyPersisted = possiblyPersisted
        message =
            possiblyPersisted
            ? "Kafka did not acknowledge the purchase, but it may have been stored; retry with the same "
                + "Idempotency-Key, which stores it at most once"
            : "Kafka did not acknowledge the purchase and it was not stored; retry with the same Idempotency-Key"
    }
}

/// The 200 of a dry run, always the same bytes.
enum DryRunAnswer {
    static let json = Array(#"{"status":"Ok!","message":"Valid purchase (dry run, not sent)"}"#.utf8)
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
    /// On the answer to a retry of a stored keyed purchase: this is the first answer again, and
    /// nothing was produced (Stripe's name for it).
    static let idempotentReplayed = Self("Idempotent-Replayed")!
}
