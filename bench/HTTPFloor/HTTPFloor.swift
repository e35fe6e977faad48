import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The limit for cm-server's routes on this machine (issue 20): Hummingbird as shipped serving one
/// route with a constant answer, no middleware, its own HTTP/1.1 channel with cm-server's idle
/// timeout and address form (cm-server's channel, ShopHTTP.WholeRequestChannel, reads each request
/// whole; docs/BENCHMARKS.md). `make bench` measures `GET /healthz` here as it measures
/// cm-server's routes; the difference is what cm-server's router, middleware and handlers add.
///
/// With `HTTP_FLOOR=nio` the same answer comes from SwiftNIO alone, the floor under Hummingbird:
/// NIO's HTTP/1 pipeline and one channel handler answering on the event loop, with no
/// `NIOAsyncChannel`, no task per connection and no router (issue 31: how much of the write
/// path's gap to the Go twin is above SwiftNIO).
///
///     PORT=8080 [HTTP_FLOOR=nio] http-floor
@main
struct HTTPFloor {
    static func main() async throws {
        guard let port = getenv("PORT").flatMap({ Int(String(cString: $0)) }) else {
            print("usage: PORT=8080 [HTTP_FLOOR=nio] http-floor")
            return
        }
        if getenv("HTTP_FLOOR").map({ String(cString: $0) }) == "nio" {
            try await nioAlone(port: port)
            return
        }
        var logger = Logger(label: "http-floor")
        logger.logLevel = .warning
        let router = Router()
        router.get("healthz") { _, _ in "Success" }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(75))),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "http-floor"),
            logger: logger
        )
        try await app.runService()
    }

    /// SwiftNIO's HTTP/1 server pipeline on the event loops Hummingbird uses (the singleton group),
    /// with ``ConstantResponder`` answering.
    static func nioAlone(port: Int) async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ConstantResponder())
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await channel.closeFuture.get()
    }
}

/// `GET /healthz` → 200 "Success", anything else → 404, as Hummingbird's floor answers (with a
/// `Date`, as Hummingbird and Go's net/http send one); keep-alive as the request asks.
final class ConstantResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var keepAlive = true
    private var found = false
    private let body = ByteBuffer(string: "Success")
    private var date = HTTPDate()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            found = head.method == .GET && head.uri == "/healthz"
        case .body:
            break
        case .end:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: found ? "\(body.readableBytes)" : "0")
            if found { headers.add(name: "Content-Type", value: "text/plain; charset=utf-8") }
            headers.add(name: "Date", value: date.now())
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            let head = HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if found { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            if keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}

/// An HTTP `Date` header's value, formatted once a second.
struct HTTPDate {
    private var second = 0
    private var text = ""

    mutating func now() -> String {
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
