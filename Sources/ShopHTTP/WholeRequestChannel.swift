import HTTPDateHeader
public import HTTPTypes
public import Hummingbird
public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import ShopService
import Synchronization

/// The HTTP/1.1 server child channel both services run: Hummingbird's pipeline and responder
/// (router, middleware, routes), with each request read whole on the event loop and handed to
/// the connection's task without an `NIOAsyncChannel` between the two.
///
/// Hummingbird's `HTTP1Channel` wraps each connection in an `NIOAsyncChannel`: the connection's
/// task takes every part of a request (head, each body part, end) from its inbound sequence and
/// writes the answer through its outbound writer, and each trip through those sequences costs
/// their locks, generic state machines and metadata lookups. Every one of these services'
/// requests is small and read whole (a purchase is at most 16 KiB), so here
/// ``RequestCycleHandler`` gathers a request's parts and hands the whole request to the
/// connection's task through a ``RequestInbox`` (one lock, one continuation), the
/// task asks the responder and gathers the answer, and the event loop writes head, body and end
/// in one flush (issue 31: cm-server's dry run 203,334 -> 166,990 instructions, docs/BENCHMARKS.md).
/// Everything else is Hummingbird's: the same pipeline (decoder, encoder,
/// `HTTP1ToHTTPServerCodec`, `HTTPConnectionStateHandler` for the idle timeout and graceful
/// shutdown), the same responder, what `Application` adds to each answer (`Date`, `Server`, a
/// 500 for an error no middleware turned into an answer, the `hb.request.id` on each line logged
/// while a request is answered, through ``RequestLogMetadata``)
/// and the same answer to a request that cannot be parsed (400, then the connection closed).
///
/// Requests sent back to back on one connection (pipelined) are answered in order, one at a
/// time; while one is waiting the connection reads no more.
///
/// A body longer than `maximumBodyBytes` is handed on as soon as it is known to be, as a body
/// that throws `NIOTooManyBytesError` when read, so that a route reading it (`collectBody(upTo:)`)
/// refuses it (413) at once, whatever its own limit; the rest is read and dropped. No route ever
/// sees a body cut short.
public struct WholeRequestChannel<Responder: HTTPResponder>: ServerChildChannel
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    public typealias Value = Connection

    /// A connection being served: its handlers answer its requests.
    public struct Connection: ServerChildChannelValue {
        public let channel: any Channel
        let inbox: RequestInbox
        /// Hands an answer back to the connection's ``RequestCycleHandler`` on its event loop.
        let reply: RequestCycleHandler.Reply
    }

    let responder: Responder
    let idleTimeout: TimeAmount?
    let maximumBodyBytes: Int
    let serverName: String?

    public init(responder: Responder, idleTimeout: TimeAmount?, maximumBodyBytes: Int, serverName: String?) {
        self.responder = responder
        self.idleTimeout = idleTimeout
        self.maximumBodyBytes = maximumBodyBytes
        self.serverName = serverName
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
            let inbox = RequestInbox()
            let cycle = RequestCycleHandler(
                inbox: inbox, maximumBodyBytes: maximumBodyBytes, serverName: serverName, logger: logger)
            try channel.pipeline.syncOperations.addHandler(cycle)
            return Connection(channel: channel, inbox: inbox, reply: try cycle.makeReply())
        }
    }

    /// The connection's task: asks the responder for each request ``RequestCycleHandler`` hands
    /// it, and hands the answer back, until the connection closes; closes it if the server's task
    /// is cancelled (graceful shutdown went past its deadline).
    public func handle(value connection: Value, logger: Logger) async {
        let channel = connection.channel
        let asking = Asking(responder: responder, logger: logger, maximumBodyBytes: maximumBodyBytes)
        await withTaskCancellationHandler {
            while let whole = await connection.inbox.next() {
                connection.reply(await asking.answer(whole, channel: channel))
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

/// Gathers each request's parts into a ``WholeRequest`` and answers them one at a time and in
/// order: the connection's task takes each from the ``RequestInbox`` and asks the responder, the
/// event loop writes the answer's head, body and end in one flush. (One handler for both: a
/// handler between them cost each request three more parts handed on and cast, ~1,100
/// instructions and an allocation.)
final class RequestCycleHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Takes the connection task's answer to the request it was handed (`nil`: close).
    typealias Reply = @Sendable (Answer?) -> Void
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Waiting {
        case request(WholeRequest)
        /// What came after the last whole request could not be parsed: answered 400, then closed.
        case unparsable
    }

    /// The request being read.
    private enum Reading {
        /// Between requests, or the rest of a body handed on as too long, which is dropped.
        case idle
        case request(HTTPRequest, ByteBuffer?)
    }

    private let inbox: RequestInbox
    private let maximumBodyBytes: Int
    private var reading = Reading.idle
    private let serverName: String?
    private let logger: Logger
    private var waiting = CircularBuffer<Waiting>(initialCapacity: 2)
    private var answering = false
    /// A read the channel asked for while a request was waiting, made once the queue is empty.
    private var readHeld = false
    private var closing = false
    /// The client sent its last byte (Hummingbird's server lets a client half-close): the
    /// connection closes once what it asked is answered.
    private var inputClosed = false
    /// When the last answer's end was written.
    private var lastAnswerWritten: EventLoopFuture<Void>?
    private var date = HTTPDate()
    private var context: ChannelHandlerContext?
    private var closeAfterAnswer = false

    init(inbox: RequestInbox, maximumBodyBytes: Int, serverName: String?, logger: Logger) {
        self.inbox = inbox
        self.maximumBodyBytes = maximumBodyBytes
        self.serverName = serverName
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch (unwrapInboundIn(data), reading) {
        case (.head(let head), _):
            reading = .request(head, nil)
        case (.body(var part), .request(let head, let gathered)):
            reading = .idle  // so that the gathered buffer is held once while it grows
            var body = part
            if var gathered {
                gathered.writeBuffer(&part)
                body = gathered
            }
            if body.readableBytes > maximumBodyBytes {
                waiting.append(.request(WholeRequest(head: head, body: .tooLong)))
                answerNext(context: context)
            } else {
                reading = .request(head, body)
            }
        case (.end, .request(let head, let body)):
            reading = .idle
            waiting.append(.request(WholeRequest(head: head, body: .whole(body ?? ByteBuffer()))))
            answerNext(context: context)
        case (.end, .idle), (.body, .idle):
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !closing else { return }
        if error is HTTPParserError {
            // As Hummingbird answers a request it cannot parse, after those before it.
            logger.debug("HTTP parse error, closing connection")
            waiting.append(.unparsable)
            answerNext(context: context)
        } else {
            logger.trace("Failed to read/write to Channel. Error: \(error)")
            closing = true
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputClosed = true
            closeIfDone(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes the connection once its client has closed its side and nothing is left to answer.
    private func closeIfDone(context: ChannelHandlerContext) {
        guard inputClosed, !answering, !closing, waiting.isEmpty else { return }
        closing = true
        // After the last answer is written: closing drops what the socket has not taken yet.
        let channel = context.channel
        (lastAnswerWritten ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Reads no more while a request waits behind the one being answered.
    func read(context: ChannelHandlerContext) {
        if waiting.isEmpty {
            context.read()
        } else {
            readHeld = true
        }
    }

    private func answerNext(context: ChannelHandlerContext) {
        guard !answering, !closing else { return }
        guard let next = waiting.popFirst() else { return closeIfDone(context: context) }
        if readHeld, waiting.isEmpty {
            readHeld = false
            context.read()
        }
        switch next {
        case .unparsable:
            closing = true
            let head = HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        case .request(let whole):
            answering = true
            start(whole, context: context)
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// The connection task's way back to this handler, made once a connection; call on the
    /// event loop, once the handler is in the pipeline. An answer that arrives after the
    /// handler was removed is dropped (the connection is closing).
    func makeReply() throws -> Reply {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        return { answer in
            eventLoop.execute {
                let handler = handler.value
                if let context = handler.context { handler.write(answer, context: context) }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        inbox.finish()
        self.context = nil
    }

    /// Hands the request to the connection's task; the answer comes back through its `reply`.
    private func start(_ whole: WholeRequest, context: ChannelHandlerContext) {
        closeAfterAnswer = whole.head.headerFields.value(of: .connection) == "close"
        inbox.deliver(whole)
    }

    private func write(_ answer: Answer?, context: ChannelHandlerContext) {
        answering = false
        guard var answer else {
            closing = true
            context.close(promise: nil)
            return
        }
        answer.head.headerFields[.date] = date.now()
        if let serverName { answer.head.headerFields[.server] = serverName }
        context.write(wrapOutboundOut(.head(answer.head)), promise: nil)
        if let body = answer.body { context.write(wrapOutboundOut(.body(body)), promise: nil) }
        if closeAfterAnswer {
            closing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(answer.trailers))).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else if inputClosed {
            lastAnswerWritten = context.writeAndFlush(wrapOutboundOut(.end(answer.trailers)))
            answerNext(context: context)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(answer.trailers)), promise: nil)
            answerNext(context: context)
        }
    }
}

/// Where ``RequestCycleHandler`` hands a connection's requests to its task, one at a time.
final class RequestInbox: Sendable {
    private enum State {
        case empty
        case waiting(UnsafeContinuation<WholeRequest?, Never>)
        case delivered(WholeRequest)
        case finished
    }

    private let state = Mutex(State.empty)

    /// The next request, or `nil` once the connection is closed.
    func next() async -> WholeRequest? {
        await withUnsafeContinuation { continuation in
            let ready: WholeRequest?? = state.withLock { state in
                switch state {
                case .delivered(let request):
                    state = .empty
                    return .some(request)
                case .finished:
                    return .some(nil)
                case .empty:
                    state = .waiting(continuation)
                    return nil
                case .waiting:
                    preconditionFailure("one task takes a connection's requests")
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func deliver(_ request: WholeRequest) {
        let waiter: UnsafeContinuation<WholeRequest?, Never>? = state.withLock { state in
            switch state {
            case .waiting(let continuation):
                state = .empty
                return continuation
            case .empty:
                state = .delivered(request)
                return nil
            case .delivered:
                preconditionFailure("a connection's requests are answered one at a time")
            case .finished:
                return nil
            }
        }
        waiter?.resume(returning: request)
    }

    func finish() {
        let waiter: UnsafeContinuation<WholeRequest?, Never>? = state.withLock { state in
            defer { state = .finished }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        waiter?.resume(returning: nil)
    }
}

/// An answer, ready to write.
struct Answer: Sendable {
    var head: HTTPResponse
    var body: ByteBuffer?
    var trailers: HTTPFields?
}

/// Asks the responder for its answer to a request, with the answer's body gathered.
struct Asking<Responder: HTTPResponder>: Sendable
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    let responder: Responder
    let logger: Logger
    let maximumBodyBytes: Int

    /// What the responder answers, with its body gathered; `nil` when the body could not be
    /// written (the connection is closed, as Hummingbird closes it).
    func answer(_ whole: WholeRequest, channel: any Channel) async -> Answer? {
        let body =
            switch whole.body {
            case .whole(let buffer): RequestBody(buffer: buffer)
            case .tooLong: RequestBody(asyncSequence: TooLongBody(maximumBytes: maximumBodyBytes))
            }
        // The request's id is on each line logged while it is answered (RequestLogMetadata).
        return await RequestLogMetadata.$requestID.withValue(.stringConvertible(RequestID())) {
            await answer(Request(head: whole.head, body: body), channel: channel)
        }
    }

    private func answer(_ request: Request, channel: any Channel) async -> Answer? {
        let context = Responder.Context(source: .init(channel: channel, logger: logger))
        let response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch {
            logger.debug("Unrecognised Error", metadata: ["error.type": "\(error)"])
            response = Response(status: .internalServerError, body: .init())
        }
        let gathered = GatheredBody()
        do {
            try await response.body.write(GatheringBodyWriter(gathered: gathered))
        } catch {
            logger.trace("Failed to write the response body. Error: \(error)")
            return nil
        }
        return Answer(head: response.head, body: gathered.body, trailers: gathered.trailers)
    }
}

/// A response's body, gathered whole by ``GatheringBodyWriter`` (these services' answers are
/// small: a page of purchases at most).
private final class GatheredBody {
    var body: ByteBuffer?
    var trailers: HTTPFields?
}

private struct GatheringBodyWriter: ResponseBodyWriter {
    let gathered: GatheredBody

    mutating func write(_ buffer: ByteBuffer) async throws {
        if gathered.body == nil {
            gathered.body = buffer
        } else {
            var buffer = buffer
            gathered.body!.writeBuffer(&buffer)
        }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        gathered.trailers = trailingHeaders
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
