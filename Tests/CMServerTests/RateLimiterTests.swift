import Configuration
import NIOCore
import ShopService
import Testing

@testable import CMServer

private func config(_ variables: [String: String]) -> ConfigReader {
    ConfigReader.shop(environment: variables)
}

@Suite struct RateLimiterTests {
    @Test func aBucketAllowsItsBurstThenItsRate() {
        let limiter = RateLimiter(
            settings: RateLimitSettings(buy: .init(perSecond: 2, burst: 3), lists: nil))
        let start = ContinuousClock.now
        let burst = (0..<4).map { _ in limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start)!.allowed }
        #expect(burst == [true, true, true, false])
        let refused = limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start)!
        #expect(refused.retryAfter == 1 && refused.remaining == 0)
        // Another principal has its own bucket; half a second refills one request.
        #expect(limiter.take(.buy, principal: .subject(Array("b".utf8)), now: start)!.allowed)
        #expect(limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start + .milliseconds(500))!.allowed)
        #expect(!limiter.take(.buy, principal: .subject(Array("a".utf8)), now: start + .milliseconds(500))!.allowed)
        #expect(
            limiter.take(.list, principal: .subject(Array("a".utf8)), now: start) == nil, "no list limit: unlimited")
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() throws {
        let limiter = RateLimiter(
            settings: RateLimitSettings(
                buy: nil, lists: nil, trustedProxies: [try #require(AddressRange("10.0.0.0/8"))]))
        let proxy: [UInt8] = [10, 1, 2, 3]
        let stranger: [UInt8] = [192, 0, 2, 1]
        // From a stranger the header is the caller's own claim: ignored.
        #expect(limiter.clientAddress(peer: stranger, forwardedFor: ["198.51.100.1"]) == stranger)
        // Through the proxy: the nearest address the proxies did not add.
        #expect(
            limiter.clientAddress(peer: proxy, forwardedFor: ["1.1.1.1, 198.51.100.1, 10.9.9.9"]) == [198, 51, 100, 1])
        // A spoofed left-most entry does not matter; garbage ends the chain at the last proxy.
        #expect(limiter.clientAddress(peer: proxy, forwardedFor: ["not-an-address"]) == proxy)
        #expect(AddressRange("::1")!.contains(AddressRange.bytes("::1")!))
        // A peer read straight from its socket address is the same principal as through the
        // byte path, IPv4 and IPv6, and an IPv4 client equals its IPv4-mapped IPv6 form.
        for text in ["192.0.2.1", "2001:db8::7", "::ffff:192.0.2.1"] {
            let address = try SocketAddress(ipAddress: text, port: 1)
            #expect(RateLimiter.Principal(address) == RateLimiter.Principal(address: AddressRange.bytes(address)!))
        }
        #expect(
            RateLimiter.Principal(try SocketAddress(ipAddress: "::ffff:192.0.2.1", port: 1))
                == RateLimiter.Principal(try SocketAddress(ipAddress: "192.0.2.1", port: 1)))
        #expect(AddressRange("10.0.0.0/33") == nil && AddressRange("example.com") == nil)
    }

    @Test func settingsReadTheVariablesAndZeroTurnsALimitOff() throws {
        let defaults = try RateLimitSettings(config: config([:]))
        #expect(defaults.buy == .init(perSecond: 20, burst: 40) && defaults.lists == .init(perSecond: 50, burst: 100))
        let off = try RateLimitSettings(config: config(["RATE_LIMIT_BUY_PER_SECOND": "0"]))
        #expect(off.buy == nil)
        #expect(throws: ConfigurationError.self) {
            try RateLimitSettings(config: config(["TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"]))
        }
    }

    /// NFC "café" and NFD "cafe\u{301}" are two subjects, as they are two names (ShopAuthTests).
    @Test func rateLimitsCountEachSubjectsOwnBytes() {
        let limiter = RateLimiter(settings: RateLimitSettings(buy: .init(perSecond: 1, burst: 1), lists: nil))
        let now = ContinuousClock.now
        #expect(limiter.take(.buy, principal: .subject(Array("caf\u{E9}".utf8)), now: now)!.allowed)
        #expect(limiter.take(.buy, principal: .subject(Array("cafe\u{301}".utf8)), now: now)!.allowed)
        #expect(!limiter.take(.buy, principal: .subject(Array("caf\u{E9}".utf8)), now: now)!.allowed)
    }
}
