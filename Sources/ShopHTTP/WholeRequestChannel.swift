public import HTTPTypes
public import Hummingbird
public import HummingbirdCore
public import Logging
public import NIOCore
import NIOHTTP1
import ShopService
import Synchronization

/// The HTTP/1.1 server child channel both services run: Hummingbird's responder (router,
/// middleware, routes) behind SwiftNIO's HTTP/1 decoder and encoder and one channel handler,
/// ``RequestCycleHandler``, with each request read whole on the event loop and handed to the
/// connection's task without an `NIOAsyncChannel` between the two.
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
/// The same handler does what `HTTP1Channel`'s other handlers do (the conversion to
/// swift-http-types, the idle timeout and graceful shutdown of `HTTPConnectionStateHandler`;
/// 152,671 -> 135,608 instructions a dry run). What stays Hummingbird's: the responder,
/// what `Application` adds to each answer (`Date`, `Server`, a
/// 500 for an error no middleware turned into an answer, the `hb.request.id` on each line logged
/// while a request is answered, through ``RequestLogMetadata``)
/// and the same answer to a request that cannot be parsed (400, then the connection closed).
///
/// Requests sent back to back on one connection (pipelined) are answered in order, one at a
/// time; while one is waiting the connection reads no more.
///
/// A body longer than `maximumBodyBytes` is handed on as soon as it is known to be, as a body
/// that throws `NIOTooManyBytesError` when read, so that a route reading it (`readBody(upTo:)`)
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
            let inbox = RequestInbox()
            let cycle = RequestCycleHandler(
                inbox: inbox, maximumBodyBytes: maximumBodyBytes, idleTimeout: idleTimeout, serverName: serverName,
                logger: logger)
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
