import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import CMServer

/// `GET /` and its assets, as served; the browser test (system-tests/browser) drives the page itself.
@Suite struct ShopPageTests {
    var app: some ApplicationProtocol {
        Application(router: buildRouter(publisher: InMemoryPublisher(), purchaseLists: .unreachable))
    }

    @Test func browsersGetThePageWithSecurityHeadersOthersTheIndex() async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                let csp = try #require(response.headers[.contentSecurityPolicy])
                #expect(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"))
                #expect(!csp.contains("unsafe-inline"))
                #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                let html = String(buffer: response.body)
                #expect(html.contains(#"<script src="shop.js" defer></script>"#))
                #expect(html.contains(#"<label for="username">"#))
            }
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(String(buffer: response.body).contains(#""service":"cm-server""#))
            }
        }
    }

    /// Relative URLs only (so it works under an ingress prefix), nothing from another origin
    /// (it works offline), no inline script or handler, and no innerHTML for API data.
    @Test(arguments: ["/", "/shop.js", "/shop.css"])
    func assetsAreSelfContainedAndUseRelativeURLs(path: String) async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: path, method: .get, headers: [.accept: "text/html"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentSecurityPolicy] != nil)
                let text = String(buffer: response.body)
                #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"))
                #expect(!text.contains("innerHTML") && !text.contains("onclick=") && !text.contains("onerror="))
                #expect(!text.contains(#"src="/"#) && !text.contains(#"href="/"#))
                #expect(!text.contains(#"fetch("/"#) && !text.contains(#"URL("/"#) && !text.contains(#"call("/"#))
            }
        }
    }
}
