#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An HTTP `Date` header's value (RFC 9110, IMF-fixdate), formatted once a second: what
/// ShopHTTP's channel adds to each answer, and bench/HTTPFloor's SwiftNIO floor too (a module of
/// its own, with no dependency, so that the floor stays off the shop's HTTP stack).
public struct HTTPDate {
    private var second = 0
    private var text = ""

    public init() {}

    public mutating func now() -> String {
        let current = time(nil)
        if current != second {
            var parts = tm()
            var copy = current
            gmtime_r(&copy, &parts)
            var buffer = [CChar](repeating: 0, count: 64)
            let length = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            text = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            second = current
        }
        return text
    }
}
