import Foundation
import Hummingbird
import Logging
import Metrics
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopHTTP

/// The opaque `cursor` of the purchase lists: where the next page starts, as base64url of
/// `<timestamp ms>.<purchaseId>`.
enum PurchaseCursor {
    static func encode(_ point: PurchasePageResumePoint) -> String {
        let text = "\(point.timestamp.millisecondsSinceEpoch).\(point.purchaseId)"
        return Base64URL.encode(Data(text.utf8))
    }

    /// - Throws: a ``FieldError`` for `cursor` when it is not one this service made.
    static func decode(_ cursor: String) throws(FieldError) -> PurchasePageResumePoint {
        let invalid = FieldError.invalidCursor
        guard let data = Base64URL.decode(cursor), let text = String(data: data, encoding: .utf8)
        else { throw invalid }
        let parts = text.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let milliseconds = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])),
            id.lowercasedString == parts[1]
        else { throw invalid }
        return PurchasePageResumePoint(
            timestamp: Timestamp(millisecondsSinceEpoch: milliseconds), purchaseId: String(parts[1]))
    }
}

extension PurchaseListItem {
    init(_ stored: StoredPurchase) {
        let id = stored.id
        self.init(
            id: id, purchaseId: id, username: stored.event.purchase.username, userid: stored.event.purchase.userid,
            price: stored.event.purchase.price.description, timestamp: stored.event.purchase.timestamp.description)
    }
}

/// `GET /buyList/{username}` and `GET /purchases/{purchaseId}`, read from the store.
struct PurchaseListRoutes {
    let store: any PurchaseStore
    /// Stored documents met by a read that are not purchases: each is left out of its page (or
    /// answered 500 as a receipt), logged with its id, and counted here for the alert.
    let unreadable = Counter(label: "cmapi_unreadable_documents_total")

    func addRoutes(to router: RouterGroup<AppRequestContext>) {
        router.get("buyList/:username") { request, context in
            await list(request: request, context: context)
        }
        router.get("purchases/:purchaseId") { _, context in
            await purchase(context: context)
        }
    }

    private func list(request: Request, context: AppRequestContext) async -> Response {
        let query: PurchaseListQuery<PurchasePageResumePoint>
        do {
            query = try PurchaseListQuery(request, context: context, cursor: PurchaseCursor.decode)
        } catch {
            return .error(.badRequest, error.message, errors: error.errors)
        }
        let limit = query.limit
        // With tokens, a list holds the caller's own purchases only (by `sub`, never by the name
        // it is asked under).
        let userid = context.identity?.listedUserid
        do {
            // A poll sending back the tag of the page it has: when the page's keys still give that
            // tag, 304 after a query of the keys alone. (One more than asked, as below.)
            let known = request.headers[values: .ifNoneMatch]
            if !known.isEmpty {
                let tag = try await store.pageTag(
                    username: query.username, userid: userid, limit: limit + 1, after: query.cursor)
                if tag.isMatched(byIfNoneMatch: known) {
                    var headers = HTTPFields()
                    tag.addHeaders(to: &headers)
                    return Response(status: .notModified, headers: headers)
                }
            }
            // One more than asked tells whether there is a next page.
            let found = try await store.listed(
                username: query.username, userid: userid, limit: limit + 1, after: query.cursor)
            let window = found.prefix(limit)
            for case .unreadable(let document) in window { report(document, context: context) }
            // The next page starts after the last document of this one that has a place in the
            // list (an unreadable one may have none; the next page then meets it again, unlisted).
            let next =
                found.count > limit
                ? window.last(where: { $0.resumePoint != nil })?.resumePoint.map(PurchaseCursor.encode) : nil
            var response = Response.json(.ok, bytes: Self.pageJSON(window, nextCursor: next))
            PageTag(listed: found).addHeaders(to: &response.headers)
            return response
        } catch {
            context.logger.error("MongoDB read failed", metadata: ["error": "\(error)"])
            return .error(.serviceUnavailable, "The purchase list is unavailable: MongoDB failed")
        }
    }

    /// `PurchaseListPage.json`'s text for these documents' purchases, written from them directly.
    static func pageJSON(_ documents: ArraySlice<ListedDocument>, nextCursor: String?) -> [UInt8] {
        var list = PurchaseListText(status: "Ok!", expectedCount: documents.count)
        for case .purchase(let purchase) in documents {
            list.startPurchase()
            purchase.appendJSON(to: &list.output)
        }
        return list.finish(nextCursor: nextCursor)
    }

    private func purchase(context: AppRequestContext) async -> Response {
        guard let raw = context.parameters.get("purchaseId"), let id = UUID(uuidString: raw) else {
            return .error(
                .badRequest, "Invalid purchaseId",
                errors: [FieldError(field: "purchaseId", reason: "must be a UUID")])
        }
        do {
            // Someone else's receipt answers exactly as a missing one: no existence oracle.
            guard let stored = try await store.purchase(id: id),
                context.identity?.mayRead(purchaseOf: stored.event.purchase.userid) ?? true
            else {
                return .error(.notFound, "No purchase \(id.lowercasedString) is stored (yet)")
            }
            return .json(.ok, StoredPurchaseAnswer(stored))
        } catch let document as UnreadableDocument {
            report(document, context: context)
            return .error(
                .internalServerError, "The document stored under \(id.lowercasedString) is not a readable purchase")
        } catch {
            context.logger.error("MongoDB read failed", metadata: ["error": "\(error)"])
            return .error(.serviceUnavailable, "The purchase is unavailable: MongoDB failed")
        }
    }

    private func report(_ document: UnreadableDocument, context: AppRequestContext) {
        unreadable.increment()
        context.logger.error(
            "a stored document is not a purchase; it is left out of what is answered",
            metadata: ["documentId": "\(document.id)", "reason": "\(document.reason)"])
    }
}

/// `GET /purchases/{purchaseId}`: the list item plus when cm-server received it and where in
/// Kafka it came from.
struct StoredPurchaseAnswer: Encodable {
    var status = "Ok!"
    var purchase: PurchaseListItem
    var receivedAt: String
    var partition: Int32
    var offset: Int64
    /// For a purchase made with an `Idempotency-Key`: cm-server tells a retry from a reuse by it.
    var idempotencyFingerprint: String?

    init(_ stored: StoredPurchase) {
        purchase = PurchaseListItem(stored)
        receivedAt = stored.event.receivedAt.description
        partition = stored.partition
        offset = stored.offset
        idempotencyFingerprint = stored.event.idempotencyFingerprint?.text
    }
}
