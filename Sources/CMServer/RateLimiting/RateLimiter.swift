import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore
import ShopService
import Synchronization

/// `RATE_LIMIT_*` and `TRUSTED_PROXIES`: how many requests one principal may make on the public
/// routes, per replica (each replica counts its own; N replicas allow up to N times as much).
struct RateLimitSettings: Sendable {
    /// A token bucket: `perSecond` sustained, `burst` at once.
    struct Limit: Sendable, Equatable {
        var perSecond: Int
        var burst: Int
    }

    /// `POST /buy`; `nil`: unlimited.
    var buy: Limit?
    /// `GET /getAllUserBuys/{username}`; `nil`: unlimited.
    var lists: Limit?
    /// Peers whose `X-Forwarded-For` is believed: the ingress controllers' addresses.
    var trustedProxies: [AddressRange]

    init(buy: Limit?, lists: Limit?, trustedProxies: [AddressRange] = []) {
        self.buy = buy
        self.lists = lists
        self.trustedProxies = trustedProxies
    }

    static let unlimited = RateLimitSettings(buy: nil, lists: nil)

    /// `RATE_LIMIT_BUY_PER_SECOND` (default 20; 0 turns the limit off) and
    /// `RATE_LIMIT_BUY_BURST` (default twice the rate); `RATE_LIMIT_LIST_PER_SECOND` (default 50)
    /// and `RATE_LIMIT_LIST_BURST` (default twice the rate); `TRUSTED_PROXIES`: comma-separated addresses or
    /// CIDR ranges (default none: `X-Forwarded-For` is ignored).
    init(config: ConfigReader) throws(ConfigurationError) {
        let buyRate = try config.integer("rate.limit.buy.per.second", default: 20, range: 0...1_000_000)
        let buyBurst = try config.integer("rate.limit.buy.burst", default: 2 * max(buyRate, 1), range: 1...10_000_000)
        buy = buyRate > 0 ? Limit(perSecond: buyRate, burst: buyBurst) : nil
        let listRate = try config.integer("rate.limit.list.per.second", default: 50, range: 0...1_000_000)
        let listBurst = try config.integer(
            "rate.limit.list.burst", default: 2 * max(listRate, 1), range: 1...10_000_000)
        lists = listRate > 0 ? Limit(perSecond: listRate, burst: listBurst) : nil
        var ranges: [AddressRange] = []
        for entry in (config.text("trusted.proxies") ?? "").split(separator: ",") {
            let text = entry.trimmingCharacters(in: .whitespaces)
            guard let range = AddressRange(text) else {
                throw config.invalid(
                    "trusted.proxies", "must be comma-separated IP addresses or CIDR ranges, got \"\(text)\"")
            }
            ranges.append(range)
        }
        trustedProxies = ranges
    }
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or one address.
struct AddressRange: Sendable, Equatable {
    let network: [UInt8]
    let prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let bytes = Self.bytes(String(first)) else { return nil }
        let length: Int
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...bytes.count * 8).contains(value) else { return nil }
            length = value
        } else {
            length = bytes.count * 8
        }
        network = bytes
        prefixLength = length
    }

    /// The address's bytes (4 or 16), or `nil` when `text` is not an IP address.
    static func bytes(_ text: String) -> [UInt8]? {
        guard let address = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
        return bytes(address)
    }

    static func bytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                return Array(bytes[12...])
            }
            return bytes
        default:
            return nil
        }
    }

    func contains(_ address: [UInt8]) -> Bool {
        guard address.count == network.count else { return false }
        var remaining = prefixLength
        for index in 0..<network.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if address[index] & mask != network[index] & mask { return false }
            remaining -= bits
        }
        return true
    }
}

/// Token buckets per principal and route: the token's subject, or the client's address for a
/// request without one. Answers 429 with `Retry-After` and the IETF RateLimit fields, and counts
/// what it refused in `http_rate_limited_total{route}`.
final class RateLimiter: Sendable {
    enum Route: String, Sendable {
        case buy
        case list
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// What one request was granted.
    struct Decision: Sendable {
        var allowed: Bool
        /// Whole requests left in the bucket.
        var remaining: Int
        /// Seconds until one more request is allowed (0 while some are left).
        var retryAfter: Int
        /// Seconds until the bucket is full again.
        var reset: Int
    }

    let settings: RateLimitSettings
    private let buckets = Mutex<[BucketKey: Bucket]>([:])
    /// Above this many principals the full buckets are forgotten (they are the same as new ones).
    private static let pruneAbove = 100_000
    private let refusedBuy = Counter(label: "http_rate_limited_total", dimensions: [("route", "buy")])
    private let refusedList = Counter(label: "http_rate_limited_total", dimensions: [("route", "list")])

    /// `RateLimit-Policy` of each route, the same on every answer: made once.
    private let buyPolicy: String
    private let listPolicy: String

    init(settings: RateLimitSettings) {
        self.settings = settings
        func policy(_ route: Route, _ limit: RateLimitSettings.Limit?) -> String {
            guard let limit else { return "" }
            let window = Int((Double(limit.burst) / Double(limit.perSecond)).rounded(.up))
            return "\"\(route.rawValue)\";q=\(limit.burst);w=\(window)"
        }
        buyPolicy = policy(.buy, settings.buy)
        listPolicy = policy(.list, settings.lists)
    }

    func limit(_ route: Route) -> RateLimitSettings.Limit? {
        switch route {
        case .buy: settings.buy
        case .list: settings.lists
        }
    }

    /// Whom a bucket belongs to: a token's subject, or a client address (16 bytes; IPv4 as
    /// IPv4-mapped IPv6). Hashed as it is: no text is made per request.
    enum Principal: Hashable, Sendable {
        /// The subject's bytes: two subjects that differ only in their Unicode normalisation are
        /// two users, as everywhere the shop compares names.
        case subject([UInt8])
        case address(UInt64, UInt64)
        case unknown

        /// The peer's address as it is, without making an array (the path of every request when
        /// no proxy is trusted).
        init(_ address: SocketAddress) {
            switch address {
            case .v4(let v4):
                self = .address(0, 0x0000_ffff_0000_0000 | UInt64(UInt32(bigEndian: v4.address.sin_addr.s_addr)))
            case .v6(let v6):
                let (high, low) = withUnsafeBytes(of: v6.address.sin6_addr) { raw in
                    (
                        UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                        UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                    )
                }
                self = .address(high, low)
            default:
                self = .unknown
            }
        }

        init(address bytes: [UInt8]) {
            var mapped = bytes
            if bytes.count == 4 { mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + bytes }
            guard mapped.count == 16 else {
                self = .unknown
                return
            }
            let high = mapped[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = mapped[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .address(high, low)
        }
    }

    private struct BucketKey: Hashable {
        var route: Route
        var principal: Principal
    }

    /// Takes one request from `principal`'s bucket for `route`.
    func take(_ route: Route, principal: Principal, now: ContinuousClock.Instant = .now) -> Decision? {
        guard let limit = limit(route) else { return nil }
        let rate = Double(limit.perSecond)
        let burst = Double(limit.burst)
        let key = BucketKey(route: route, principal: principal)
        let decision = buckets.withLock { buckets in
            if buckets.count > Self.pruneAbove {
                buckets = buckets.filter { _, bucket in
                    bucket.tokens + Self.seconds(now - bucket.updated) * rate < burst
                }
            }
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + Self.seconds(now - bucket.updated) * rate)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            buckets[key] = bucket
            return Decision(
                allowed: allowed, remaining: Int(bucket.tokens.rounded(.down)),
                retryAfter: allowed ? 0 : Int(((1 - bucket.tokens) / rate).rounded(.up)),
                reset: Int(((burst - bucket.tokens) / rate).rounded(.up)))
        }
        if !decision.allowed {
            (route == .buy ? refusedBuy : refusedList).increment()
        }
        return decision
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Who a request counts against: the verified token's subject, else the client's address,
    /// the client being the connection's peer or, when the peer is a trusted proxy, the nearest
    /// untrusted address in `X-Forwarded-For`.
    func principal(request: Request, context: AppRequestContext) -> Principal {
        if let identity = context.identity { return .subject(Array(identity.userid.utf8)) }
        guard let remote = context.remoteAddress else { return .unknown }
        guard !settings.trustedProxies.isEmpty else { return Principal(remote) }
        guard let peer = AddressRange.bytes(remote) else { return .unknown }
        return Principal(address: clientAddress(peer: peer, forwardedFor: request.headers[values: .xForwardedFor]))
    }

    /// `forwardedFor` is read only when the peer is a trusted proxy.
    func clientAddress(peer: [UInt8], forwardedFor: @autoclosure () -> [String]) -> [UInt8] {
        var client = peer
        guard isTrusted(client) else { return client }
        let hops = forwardedFor().flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            // A hop that is not an address ends the chain: whoever wrote it is the last trusted one.
            guard let address = AddressRange.bytes(hop) else { return client }
            client = address
            if !isTrusted(address) { return address }
        }
        return client
    }

    private func isTrusted(_ address: [UInt8]) -> Bool {
        !settings.trustedProxies.isEmpty && settings.trustedProxies.contains { $0.contains(address) }
    }

    /// Runs `body` when `principal` has a request left on `route`; otherwise answers 429. Either
    /// way the answer carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    func limited(
        _ route: Route, request: Request, context: AppRequestContext, _ body: () async throws -> Response
    ) async rethrows -> Response {
        guard let limit = limit(route) else { return try await body() }
        let decision = take(route, principal: principal(request: request, context: context))!
        var response: Response
        if decision.allowed {
            response = try await body()
        } else {
            response = .error(
                .tooManyRequests,
                "Too many requests: at most \(limit.perSecond) per second (bursts of \(limit.burst)) on this route; "
                    + "retry after \(decision.retryAfter) s")
            response.headers[.retryAfter] = String(decision.retryAfter)
        }
        response.headers[.rateLimitPolicy] = route == .buy ? buyPolicy : listPolicy
        response.headers[.rateLimit] = "\"\(route.rawValue)\";r=\(decision.remaining);t=\(decision.reset)"
        return response
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let rateLimit = Self("RateLimit")!
    static let rateLimitPolicy = Self("RateLimit-Policy")!
}
