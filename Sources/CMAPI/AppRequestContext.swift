import HummingbirdAuth
import ShopAuth

/// The request context of cm-api's router: Hummingbird's, and the principal a verified bearer token
/// speaks for (hummingbird-auth's `identity`: `nil` with `AUTH_MODE=none` and on the open routes).
typealias AppRequestContext = BasicAuthRequestContext<ShopPrincipal>
