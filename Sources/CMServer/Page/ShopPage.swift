import HTTPTypes
import Hummingbird
import NIOCore
import ShopHTTP

/// `GET /`: the shop page for browsers (`Accept: text/html`), a JSON index of the API
/// otherwise; `GET /shop.js` and `GET /shop.css` are its script and style. Everything is
/// embedded in the binary, served with a strict Content-Security-Policy (no inline code, only
/// this origin) and no external resource, so it works offline and under an ingress prefix.
enum ShopPage {
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            + "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        .xContentTypeOptions: "nosniff",
        .referrerPolicy: "no-referrer",
        .xFrameOptions: "DENY",
        .crossOriginOpenerPolicy: "same-origin",
    ]

    static func addRoutes(to router: Router<some RequestContext>) {
        router.get("/") { request, _ -> Response in
            let accept = request.headers.value(of: .accept) ?? ""
            guard accept.contains("text/html") else { return .json(.ok, Index()) }
            return asset(PackageResources.shop_html, type: "text/html; charset=utf-8")
        }
        router.get("shop.js") { _, _ in asset(PackageResources.shop_js, type: "text/javascript; charset=utf-8") }
        router.get("shop.css") { _, _ in asset(PackageResources.shop_css, type: "text/css; charset=utf-8") }
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// What a client that is not a browser gets at `/`.
    struct Index: Encodable {
        var service = "cm-server"
        var endpoints = [
            "POST /buy", "GET /getAllUserBuys/{username}", "GET /healthz", "GET /readyz", "GET /metrics",
            "GET /openapi.yaml",
        ]
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let crossOriginOpenerPolicy = Self("Cross-Origin-Opener-Policy")!
}
