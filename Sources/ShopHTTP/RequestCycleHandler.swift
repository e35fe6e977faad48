import HTTPDateHeader
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// The one handler of a connection above SwiftNIO's HTTP/1 decoder and encoder: it turns each
/// request's head into swift-http-types' `HTTPRequest`, gathers its parts into a
/// ``WholeRequest``, answers the requests one at a time and in order (the connection's task
/// takes each from the ``RequestInbox`` and asks the responder, the event loop writes the
/// answer's head, body and end in one flush), closes a connection idle for the idle timeout and
/// closes each connection once it is idle when the server shuts down.
///
/// That is the work of four handlers in Hummingbird's HTTP/1 channel (swift-nio-extras'
/// `HTTP1ToHTTPServerCodec`, Hummingbird's `HTTPConnectionStateHandler`, a handler gathering the
/// parts, one answering), done here in one: each handler in between took each request's three
/// parts and the answer's three again, each cast out of `NIOAny` and handed on through its
/// context, and the codec parsed every request's target with Foundation's `URLComponents`
/// (issue 31, docs/BENCHMARKS.md). The idle timeout and shutdown follow
/// `HTTPConnectionStateHandler` (Hummingbird 2.x): the timeout counts from the last part read or
/// answer written and never closes a connection whose request is read and being answered; a
/// connection answering when the server quiesces closes after the last answer it owes.
final class RequestCycleHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Takes the connection task's answer to the request it was handed (`nil`: close).
    typealias Reply = @Sendable (Answer?) -> Void
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

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
    private let idleTimeout: TimeAmount?
    private let serverName: String?
    private let logger: Logger
    private var reading = Reading.idle
    private var waiting = CircularBuffer<Waiting>(initialCapacity: 2)
    private var answering = false
    /// Requests whose head was read and whose answer's end is not written yet.
    private var requestsInProgress = 0
    /// A read the channel asked for while a request was waiting, made once the queue is empty.
    private var readHeld = false
    private var closing = false
    /// The server is shutting down: close once the answers owed are written.
    private var quiescing = false
    /// The client sent its last byte (Hummingbird's server lets a client half-close): the
    /// connection closes once what it asked is answered.
    private var inputClosed = false
    /// When the last answer's end was written.
    private var lastAnswerWritten: EventLoopFuture<Void>?
    /// When a part was last read or an answer last written: the idle timeout counts from here.
    private var lastActive = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    private var date = HTTPDate()
    private var context: ChannelHandlerContext?
    private var closeAfterAnswer = false

    init(inbox: RequestInbox, maximumBodyBytes: Int, idleTimeout: TimeAmount?, serverName: String?, logger: Logger) {
        self.inbox = inbox
        self.maximumBodyBytes = maximumBodyBytes
        self.idleTimeout = idleTimeout
        self.serverName = serverName
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { scheduleIdleCheck(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        scheduleIdleCheck(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        inbox.finish()
        idleCheck?.cancel()
        idleCheck = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        lastActive = .now()
        switch (unwrapInboundIn(data), reading) {
        case (.head(let head), _):
            requestsInProgress += 1
            do {
                reading = .request(try HTTPRequest(shopHead: head), nil)
            } catch {
                logger.debug("HTTP request head not convertible, closing connection", metadata: ["error": "\(error)"])
                reading = .idle
                waiting.append(.unparsable)
                answerNext(context: context)
            }
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
        switch event {
        case is ChannelShouldQuiesceEvent:
            // Graceful shutdown: an idle connection closes now, a busy one after its answers.
            quiescing = true
            if requestsInProgress == 0, !closing {
                closing = true
                context.close(promise: nil)
            }
        case ChannelEvent.inputClosed:
            inputClosed = true
            closeIfDone(context: context)
            context.fireUserInboundEventTriggered(event)
        default:
            context.fireUserInboundEventTriggered(event)
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
            var head = HTTPResponseHead(version: .http1_1, status: .badRequest)
            head.headers.add(name: "Connection", value: "close")
            head.headers.add(name: "Content-Length", value: "0")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        case .request(let whole):
            answering = true
            closeAfterAnswer = whole.head.headerFields.value(of: .connection) == "close"
            inbox.deliver(whole)
        }
    }

    private func write(_ answer: Answer?, context: ChannelHandlerContext) {
        answering = false
        guard let answer else {
            closing = true
            context.close(promise: nil)
            return
        }
        var head = HTTPResponseHead(answer.head)
        head.headers.replaceOrAdd(name: "Date", value: date.now())
        if let serverName { head.headers.replaceOrAdd(name: "Server", value: serverName) }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body = answer.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let end = wrapOutboundOut(.end(answer.trailers.map(HTTPHeaders.init)))
        requestsInProgress -= 1
        lastActive = .now()
        if closeAfterAnswer || (quiescing && requestsInProgress == 0) {
            closing = true
            let channel = context.channel
            context.writeAndFlush(end).whenComplete { _ in channel.close(promise: nil) }
        } else if inputClosed {
            lastAnswerWritten = context.writeAndFlush(end)
            answerNext(context: context)
        } else {
            context.writeAndFlush(end, promise: nil)
            if requestsInProgress == 0 { scheduleIdleCheck(context: context) }
            answerNext(context: context)
        }
    }

    /// Checks for the idle timeout at its deadline, unless a check is already due.
    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        guard let idleTimeout, idleCheck == nil else { return }
        scheduleIdleCheck(at: lastActive + idleTimeout, context: context)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline, context: ChannelHandlerContext) {
        idleCheck = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) {
            self.idleCheck = nil
            self.checkIdle(context: context)
        }
    }

    private func checkIdle(context: ChannelHandlerContext) {
        guard let idleTimeout, !closing, context.channel.isActive else { return }
        // A request read whole and being answered is not idle: the check comes back with its end.
        if case .idle = reading, requestsInProgress > 0 { return }
        if NIODeadline.now() >= lastActive + idleTimeout {
            closing = true
            context.close(promise: nil)
        } else {
            scheduleIdleCheck(at: lastActive + idleTimeout, context: context)
        }
    }
}

extension HTTPRequest {
    /// `HTTPRequest(head, secure: false, splitCookie: false)` (swift-nio-extras'
    /// NIOHTTPTypesHTTP1), without its cost for the usual request: a target in origin form (a
    /// path, `/buy?dryRun=true`) is the request's path as it stands, where that initializer
    /// parses every target with Foundation's `URLComponents` (~3,700 instructions) to find the
    /// same; the first `Host` is the authority, found in the one pass over the fields that
    /// builds `headerFields` (that initializer lowercases each name to look for it). Any other
    /// target (absolute or asterisk form) goes through that initializer.
    init(shopHead head: HTTPRequestHead) throws {
        guard head.uri.utf8.first == UInt8(ascii: "/") else {
            self = try HTTPRequest(head, secure: false, splitCookie: false)
            return
        }
        var authority: String?
        var fields = HTTPFields()
        fields.reserveCapacity(head.headers.count)
        var firstHost = true
        for (name, value) in head.headers {
            if firstHost, Self.isHost(name) {
                firstHost = false
                authority = value
                continue
            }
            // As that initializer: a field whose name is not a token is left out.
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        self.init(
            method: try Method(head.method), scheme: "http", authority: authority, path: head.uri,
            headerFields: fields)
    }

    /// `name` is `Host` in any case.
    private static func isHost(_ name: String) -> Bool {
        var bytes = name.utf8.makeIterator()
        for expected in "host".utf8 {
            guard let byte = bytes.next(), byte | 0x20 == expected else { return false }
        }
        return bytes.next() == nil
    }
}
