import Hummingbird
import HummingbirdAuth
import NIOCore
import ShopAuth

/// The request context of cm-server's router: Hummingbird's, the principal a verified bearer token
/// speaks for (hummingbird-auth's `identity`: `nil` with `AUTH_MODE=none` and on the open routes),
/// and the connection's peer, which the rate limits key anonymous callers by.
struct AppRequestContext: AuthRequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    var identity: ShopPrincipal?
    /// Kept rather than its address: most requests never ask.
    private let channel: (any Channel)?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
        channel = source.channel
    }

    var remoteAddress: SocketAddress? { channel?.remoteAddress }
}
