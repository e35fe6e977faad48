import HTTPDateHeader
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PurchaseDomain
import PurchaseWire

#if canImport(Glibc)
    import Glibc
#endif

/// The limit for cm-server's routes on this machine (issue 20): Hummingbird as shipped serving one
/// route with a constant answer, no middleware, its own HTTP/1.1 channel with cm-server's idle
/// timeout and address form (cm-server's channel, ShopHTTP.WholeRequestChannel, reads each request
/// whole; docs/BENCHMARKS.md). `make bench` measures `GET /healthz` here as it measures
/// cm-server's routes; the difference is what cm-server's router, middleware and handlers add.
///
/// With `HTTP_FLOOR=nio` the same answers come from SwiftNIO alone, the floor under Hummingbird:
/// NIO's HTTP/1 pipeline and one channel handler answering on the event loop, with no
/// `NIOAsyncChannel`, no task per connection and no router (issue 31: how much of the write
/// path's gap to the Go twin is above SwiftNIO).
///
/// Both also answer `POST /buy?dryRun=true` as cm-server's dry run does for a valid purchase: the
/// body read whole (16 KiB at most) and validated by the shop's own reader
/// (`PurchaseRequest(json:receivedAt:)`), the same 200; no authentication, rate limit, metrics or
/// tracing (what the Go twin leaves out too). Anything invalid is a bare 400.
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
        router.post("buy") { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: DryRun.maximumBodyBytes)
            guard request.uri.queryParameters["dryRun"] == "true", DryRun.isValid(Array(buffer: body)) else {
                return Response(status: .badRequest)
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: DryRun.answer)))
        }
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

/// The dry run both floors answer: cm-server's body limit, validation and answer.
enum DryRun {
    static let maximumBodyBytes = 16 * 1024
    static let answer = Array(#"{"status":"Ok!","message":"Valid purchase (dry run, not sent)"}"#.utf8)

    static func isValid(_ body: [UInt8]) -> Bool {
        (try? PurchaseRequest(json: body, receivedAt: .now)) != nil
    }
}

/// `GET /healthz` → 200 "Success", a valid `POST /buy?dryRun=true` → the dry run's 200, anything
/// else → 404 or 400, as Hummingbird's floor answers (with a `Date`, as Hummingbird and Go's
/// net/http send one); keep-alive as the request asks.
final class ConstantResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Route { case healthz, dryRun, none }

    private var keepAlive = true
    private var route = Route.none
    private var received: ByteBuffer?
    private var tooLong = false
    private let success = ByteBuffer(string: "Success")
    private let dryRunAnswer = ByteBuffer(bytes: DryRun.answer)
    private var date = HTTPDate()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            route =
                switch (head.method, head.uri) {
                case (.GET, "/healthz"): .healthz
                case (.POST, "/buy?dryRun=true"): .dryRun
                default: .none
                }
            received = nil
            tooLong = false
        case .body(var part):
            // Past the limit the body is dropped as it comes: the request is refused anyway.
            if tooLong || (received?.readableBytes ?? 0) + part.readableBytes > DryRun.maximumBodyBytes {
                tooLong = true
                received = nil
            } else if received == nil {
                received = part
            } else {
                received!.writeBuffer(&part)
            }
        case .end:
            let status: HTTPResponseStatus
            let body: ByteBuffer?
            let contentType: String?
            switch route {
            case .healthz:
                (status, body, contentType) = (.ok, success, "text/plain; charset=utf-8")
            case .dryRun:
                let bytes = received.map { Array(buffer: $0) } ?? []
                (status, body, contentType) =
                    !tooLong && DryRun.isValid(bytes)
                    ? (.ok, dryRunAnswer, "application/json") : (.badRequest, nil, nil)
            case .none:
                (status, body, contentType) = (.notFound, nil, nil)
            }
            received = nil
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "\(body?.readableBytes ?? 0)")
            if let contentType { headers.add(name: "Content-Type", value: contentType) }
            headers.add(name: "Date", value: date.now())
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if let body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            if keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
