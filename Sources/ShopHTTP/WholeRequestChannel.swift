public import HTTPTypes
public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTP1
public import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 server child channel, with each request read whole on the event loop
/// before the route sees it.
///
/// Hummingbird's `HTTP1Channel` hands its connection's task every part of a request (head, each
/// body part, end) through the channel's async sequence, and a route reading the body reads it
/// from that sequence. Every one of these services' requests is small and read whole (a
/// purchase is at most 16 KiB), so here a channel handler gathers the parts and the task takes
/// one element per request: two fewer trips through the async sequence and its locks, and no
/// body stream. Everything else is Hummingbird's: the same pipeline (decoder, encoder,
/// `HTTP1ToHTTPServerCodec`, `HTTPConnectionStateHandler` for the idle timeout and graceful
/// shutdown), the same responder (router, middleware), the same answers to a request that
/// cannot be parsed.
///
/// A body longer than `maximumBodyBytes` is handed on as soon as it is known to be, as a body
/// that throws `NIOTooManyBytesError` when read, so that a route reading it (`collectBody(upTo:)`)
/// refuses it (413) at once, whatever its own limit; the rest is read and dropped. No route ever
/// sees a body cut short.
public struct WholeRequestChannel: ServerChildChannel {
    public typealias Value = NIOAsyncChannel<WholeRequest, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let idleTimeout: TimeAmount?
    let maximumBodyBytes: Int

    public init(responder: @escaping HTTPChannelHandler.Responder, idleTimeout: TimeAmount?, maximumBodyBytes: Int) {
        self.responder = responder
        self.idleTimeout = idleTimeout
        self.maximumBodyBytes = maximumBodyBytes
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // As HTTP1Channel configures it (Hummingbird 2.28).
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldCount = 1000
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: limits
            )
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(
                HTTPConnectionStateHandler(idleTimeout: idleTimeout.map { .init($0) }, logger: logger))
            try channel.pipeline.syncOperations.addHandler(WholeRequestHandler(maximumBodyBytes: maximumBodyBytes))
            return try NIOAsyncChannel(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    public func handle(value asyncChannel: Value, logger: Logger) async {
        do {
            try await withTaskCancellationHandler {
                try await asyncChannel.executeThenClose { inbound, outbound in
                    do {
                        for try await whole in inbound {
                            let body =
                                switch whole.body {
                                case .whole(let buffer): RequestBody(buffer: buffer)
                                case .tooLong: RequestBody(asyncSequence: TooLongBody(maximumBytes: maximumBodyBytes))
                                }
                            let request = Request(head: whole.head, body: body)
                            try await responder(request, ResponseWriter(outbound: outbound), asyncChannel.channel)
                            if whole.head.headerFields[.connection] == "close" { break }
                        }
                    } catch is HTTPParserError {
                        // As Hummingbird answers a request it cannot parse: 400, and the connection closed.
                        logger.debug("HTTP parse error, closing connection")
                        try await outbound.write(
                            contentsOf: [
                                .head(
                                    .init(
                                        status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])),
                                .end(nil),
                            ])
                    }
                    outbound.finish()
                    try await asyncChannel.channel.closeFuture.get()
                }
            } onCancel: {
                asyncChannel.channel.close(mode: .input, promise: nil)
            }
        } catch {
            logger.trace("Failed to read/write to Channel. Error: \(error)")
        }
    }
}

/// A request read whole: its head and its body, or the news that the body is longer than the
/// channel takes.
public struct WholeRequest: Sendable {
    public enum Body: Sendable {
        case whole(ByteBuffer)
        case tooLong
    }

    public let head: HTTPRequest
    public let body: Body
}

/// The body of a request whose body was too long: reading it throws what `collectBody(upTo:)`
/// throws for a body over its limit.
struct TooLongBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let maximumBytes: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let maximumBytes: Int
        mutating func next() async throws -> ByteBuffer? { throw NIOTooManyBytesError(maxBytes: maximumBytes) }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(maximumBytes: maximumBytes) }
}

/// Gathers a request's parts into a ``WholeRequest``.
final class WholeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = WholeRequest

    private enum State {
        /// Between requests, or the rest of a body handed on as too long, which is dropped.
        case idle
        case reading(HTTPRequest, ByteBuffer?)
    }

    private let maximumBodyBytes: Int
    private var state = State.idle

    init(maximumBodyBytes: Int) {
        self.maximumBodyBytes = maximumBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), _):
            state = .reading(head, nil)
        case (.body(var part), .reading(let head, let gathered)):
            state = .idle  // so that the gathered buffer is held once while it grows
            var body = part
            if var gathered {
                gathered.writeBuffer(&part)
                body = gathered
            }
            if body.readableBytes > maximumBodyBytes {
                context.fireChannelRead(wrapInboundOut(WholeRequest(head: head, body: .tooLong)))
            } else {
                state = .reading(head, body)
            }
        case (.end, .reading(let head, let body)):
            state = .idle
            context.fireChannelRead(
                wrapInboundOut(WholeRequest(head: head, body: .whole(body ?? ByteBuffer()))))
        case (.end, .idle), (.body, .idle):
            break
        }
    }
}
