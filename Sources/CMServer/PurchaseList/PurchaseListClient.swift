import AsyncHTTPClient
import Foundation
import NIOCore
import PurchaseDomain
import PurchaseWire
import ShopAuth
import ShopService
import Tracing

/// Asks cm-api for a page of a user's purchases (`GET /buyList/{username}`), over the process's
/// one shared `HTTPClient` (its connection pool is reused across requests).
struct PurchaseListClient: Sendable {
    let http: HTTPClient
    /// For requests being traced (a span is current), when the process traces: AsyncHTTPClient's
    /// tracing is set per client, and costs a request that is not traced a URL parse and a span's
    /// attributes on a no-op span (about 60,000 instructions), so those go through `http`, which
    /// has no tracer.
    let tracedHTTP: HTTPClient?
    /// `http://host:port` of cm-api.
    let baseURL: String
    /// The whole exchange, connect to last byte; past it the caller answers 504.
    let timeout: Duration
    /// Sent as `Shop-Service-Token`: cm-api answers only cm-server.
    let serviceToken: ServiceToken?

    /// The largest answer accepted: 1,000 purchases of the largest fields fit well inside it.
    static let maximumResponseBytes = 4 * 1024 * 1024

    /// The process's HTTP client towards cm-api. A connection that cannot be made in 2 s fails
    /// (cm-api is in the same cluster); `CM_API_TIMEOUT_MS` bounds each exchange, so the read
    /// timeout is only a backstop above its 60 s maximum. Up to 64 pooled connections, the
    /// request concurrency `make bench` drives, kept 60 s idle (under cm-api's 75 s idle timeout,
    /// so the client, not cm-api, closes them).
    /// `traced`: a CLIENT span per call, its context in the request's traceparent (the tracer
    /// bootstrapped); otherwise no tracer at all.
    static func httpConfiguration(traced: Bool = false) -> HTTPClient.Configuration {
        var http = HTTPClient.Configuration()
        http.timeout = .init(connect: .seconds(2), read: .seconds(61))
        http.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        if !traced { http.tracing.tracer = nil }
        return http
    }

    /// Runs `body` with the client for traced requests when the process traces, else with `nil`.
    static func withTracedHTTPClient<T>(_ body: (HTTPClient?) async throws -> T) async throws -> T {
        guard ShopTracing.isEnabled else { return try await body(nil) }
        return try await HTTPClient.withHTTPClient(configuration: httpConfiguration(traced: true), body)
    }

    init(
        http: HTTPClient, tracedHTTP: HTTPClient? = nil, host: String, timeout: Duration,
        serviceToken: ServiceToken? = nil
    ) {
        self.http = http
        self.tracedHTTP = tracedHTTP
        self.baseURL = "http://\(host)"
        self.timeout = timeout
        self.serviceToken = serviceToken
    }

    /// A page as cm-api answered it: its items' text to pass on as it is, when the page holds only
    /// the contract's fields (what cm-api writes); decoded otherwise, so that only those reach
    /// the client.
    enum Page {
        case text(PurchaseListPageText)
        case decoded(PurchaseListPage)

        var nextCursor: String? {
            switch self {
            case .text(let page): page.nextCursor
            case .decoded(let page): page.nextCursor
            }
        }
    }

    /// cm-api's answer to a list request: the page, or `nil` when it is the one the caller has
    /// (its `If-None-Match` named the page's tag: 304), and the page's `ETag`.
    struct Answer {
        var page: Page?
        var tag: String?
    }

    /// Why a page could not be had from cm-api.
    enum Failure: Error, Equatable {
        /// cm-api refused the request itself (a 400): its status, message and per-field reasons
        /// are the client's.
        case rejected(status: Int, message: String, errors: [FieldError])
        /// cm-api failed, answered something that is not a page, or could not be reached: what
        /// the client is told, and the details for the log.
        case upstream(String, detail: String = "")
        /// cm-api did not answer within ``PurchaseListClient/timeout``.
        case timedOut
    }

    /// One GET to cm-api with the caller's `Authorization` and the service token: its status and
    /// `ETag` and body (at most `upTo` bytes). Past `timeout`, `.timedOut`; unreachable, `.upstream`.
    private func get(
        _ url: String, authorization: String?, ifNoneMatch: [String] = [], timeout: Duration, upTo limit: Int
    ) async throws(Failure) -> (status: UInt, tag: String?, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        for field in ifNoneMatch { request.headers.add(name: "If-None-Match", value: field) }
        if let serviceToken { request.headers.add(name: ServiceToken.header.rawName, value: serviceToken.value) }
        do {
            let client = ServiceContext.current == nil ? http : tracedHTTP ?? http
            let response = try await client.execute(request, timeout: TimeAmount(timeout))
            return (
                response.status.code, response.headers.first(name: "ETag"), try await response.body.collect(upTo: limit)
            )
        } catch let error as HTTPClientError
            where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout
        {
            throw .timedOut
        } catch {
            throw .upstream("cm-api could not be reached", detail: "\(error)")
        }
    }

    /// - Parameters:
    ///   - authorization: the caller's own `Authorization` header, passed on for cm-api to verify.
    ///   - ifNoneMatch: the caller's `If-None-Match` field lines, passed on: the page's tag is
    ///     cm-api's, since cm-server's page is made from cm-api's alone.
    func page(
        username: String, limit: Int, cursor: String?, authorization: String? = nil, ifNoneMatch: [String] = []
    ) async throws(Failure) -> Answer {
        var url = "\(baseURL)/buyList/\(Self.percentEncoded(username))?limit=\(limit)"
        if let cursor { url += "&cursor=\(Self.percentEncoded(cursor))" }
        let (status, tag, body) = try await get(
            url, authorization: authorization, ifNoneMatch: ifNoneMatch, timeout: timeout,
            upTo: Self.maximumResponseBytes)
        switch status {
        case 200:
            let json = Array(buffer: body)
            if let text = PurchaseListPageText(json: json) { return Answer(page: .text(text), tag: tag) }
            do {
                return Answer(page: .decoded(try PurchaseListPage(json: json)), tag: tag)
            } catch {
                throw .upstream("cm-api answered 200 with something that is not a purchase list", detail: "\(error)")
            }
        case 304 where !ifNoneMatch.isEmpty:
            return Answer(page: nil, tag: tag)
        case 400:
            // Only a bad request is the client's doing (a forged cursor, say); any other status,
            // a 404 included (an unknown user is an empty list, so a 404 means a wrong
            // CM_API_HOST), is cm-api failing.
            let refusal = try? JSONDecoder().decode(UpstreamError.self, from: body)
            throw .rejected(
                status: Int(status), message: refusal?.message ?? "cm-api refused the request (\(status))",
                errors: refusal?.errors ?? [])
        default:
            throw .upstream("cm-api answered \(status)")
        }
    }

    /// What cm-api has stored under a purchaseId, as far as `POST /buy` needs it to tell a retry
    /// of a keyed purchase from the key reused: `nil` while nothing is stored under it.
    /// - Parameters:
    ///   - timeout: the whole exchange; past it the lookup fails (`.timedOut`).
    ///   - authorization: the caller's own `Authorization` header (cm-api shows a purchase only
    ///     to its owner).
    func receipt(of purchaseId: UUID, timeout: Duration, authorization: String? = nil) async throws(Failure)
        -> StoredReceipt?
    {
        let (status, _, body) = try await get(
            "\(baseURL)/purchases/\(purchaseId.lowercasedString)", authorization: authorization, timeout: timeout,
            upTo: 64 * 1024)
        switch status {
        case 200:
            do {
                return try StoredReceipt(json: body)
            } catch {
                throw .upstream("cm-api answered 200 with something that is not a stored purchase", detail: "\(error)")
            }
        case 404: return nil
        default: throw .upstream("cm-api answered \(status)")
        }
    }

    /// Everything but RFC 3986's unreserved characters is escaped, `/` included, so a username
    /// stays one path segment.
    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved)!
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    private struct UpstreamError: Decodable {
        var message: String
        var errors: [FieldError]?
    }
}

/// What cm-api's `GET /purchases/{purchaseId}` says of a stored purchase, as far as a keyed
/// `POST /buy` needs it: the purchase, what request it was stored for, and where Kafka put it.
struct StoredReceipt: Hashable, Sendable {
    var purchase: Purchase
    var fingerprint: IdempotencyFingerprint?
    var partition: Int32
    var offset: Int64

    private struct Wire: Decodable {
        var purchase: PurchaseListItem
        var partition: Int32
        var offset: Int64
        var idempotencyFingerprint: String?
    }

    init(purchase: Purchase, fingerprint: IdempotencyFingerprint?, partition: Int32, offset: Int64) {
        self.purchase = purchase
        self.fingerprint = fingerprint
        self.partition = partition
        self.offset = offset
    }

    init(json: ByteBuffer) throws {
        let wire = try JSONDecoder().decode(Wire.self, from: Data(buffer: json))
        purchase = try Purchase(
            username: wire.purchase.username, userid: wire.purchase.userid,
            price: Price(parsing: Substring(wire.purchase.price)),
            timestamp: Timestamp(rfc3339: wire.purchase.timestamp))
        fingerprint = try wire.idempotencyFingerprint.map { text in
            guard let fingerprint = IdempotencyFingerprint(text: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "idempotencyFingerprint"))
            }
            return fingerprint
        }
        partition = wire.partition
        offset = wire.offset
    }
}
