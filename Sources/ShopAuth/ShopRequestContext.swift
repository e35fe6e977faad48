public import Hummingbird
public import HummingbirdAuth
public import NIOCore

/// The request context of both services' routers: Hummingbird's, the principal a verified bearer
/// token speaks for (hummingbird-auth's `identity`: `nil` with `AUTH_MODE=none` and on the open
/// routes), and the connection's peer, which the rate limits key anonymous callers by.
public struct ShopRequestContext: AuthRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: ShopPrincipal?
    /// Kept rather than its address: most requests never ask.
    private let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
        channel = source.channel
    }

    public var remoteAddress: SocketAddress? { channel?.remoteAddress }
}
