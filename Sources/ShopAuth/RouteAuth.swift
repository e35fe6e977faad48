public import Hummingbird
public import HummingbirdAuth
public import Logging
public import ServiceLifecycle
public import ShopService

/// What a router needs to authenticate: the token verifier (`nil` with `AUTH_MODE=none`) and the
/// service credential between cm-server and cm-api.
public struct RouteAuth: Sendable {
    public var verifier: TokenVerifier?
    public var serviceToken: ServiceToken?
    /// How often the key set file is read again (`AUTH_JWKS_RELOAD_S`).
    public var keySetReload: Duration

    public init(
        verifier: TokenVerifier? = nil, serviceToken: ServiceToken? = nil, keySetReload: Duration = .seconds(10)
    ) {
        self.verifier = verifier
        self.serviceToken = serviceToken
        self.keySetReload = keySetReload
    }

    /// What runs beside the server: the key set's reloader when the keys come from a file.
    public func services(logger: Logger) -> [any Service] {
        guard let file = verifier?.keySetFile else { return [] }
        return [KeySetReloader(file: file, interval: keySetReload, logger: logger)]
    }

    /// The original contract: no tokens, no service credential.
    public static let none = RouteAuth()

    /// Reads `AUTH_*` and `CM_API_SERVICE_TOKEN`; with `AUTH_MODE=jwt` the service token is
    /// required.
    public init(settings: AuthSettings, serviceToken: ServiceToken?) async throws(ConfigurationError) {
        if settings.mode == .jwt {
            guard serviceToken != nil else {
                throw ConfigurationError(
                    variable: "CM_API_SERVICE_TOKEN",
                    reason: "is required with AUTH_MODE=jwt: cm-api serves cm-server only")
            }
            self.init(
                verifier: try await TokenVerifier(settings: settings), serviceToken: serviceToken,
                keySetReload: settings.keySetReload)
        } else {
            self.init(serviceToken: serviceToken)
        }
    }

    /// Adds the bearer-token middleware (with `AUTH_MODE=jwt`) to a group of public routes.
    public func protect<Context: AuthRequestContext<ShopPrincipal>>(_ group: RouterGroup<Context>) {
        if let verifier { group.add(middleware: BearerTokenMiddleware<Context>(verifier: verifier)) }
    }
}
