import Foundation
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import NIOPosix
import ShopHTTP
import ShopService
import ShopTestSupport
import Synchronization
import Testing

@testable import CMServer

/// cm-server's routes served as the process serves them (`ShopHTTPServer.http1`: each request
/// read whole before it is routed), spoken to over a raw connection: what a client sending
/// several requests on one connection, or a body longer than the server takes, gets.
@Suite struct WholeRequestChannelTests {
    let publisher = InMemoryPublisher()

    var app: some ApplicationProtocol {
        ShopHTTPServer.application(
            router: buildRouter(publisher: publisher, purchaseLists: .unreachable, receipts: publisher),
            idleTimeout: .seconds(10),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "cm-server"))
    }

    @Test func pipelinedRequestsAreAnsweredInOrderEachWithItsWholeBody() async throws {
        // The second purchase's body comes in pieces (chunked), the route reads it whole.
        let pieces: [Substring] = [
            originalBody.prefix(10), originalBody.dropFirst(10).prefix(30), originalBody.dropFirst(40),
        ]
        var chunked =
            "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        for piece in pieces { chunked += String(piece.utf8.count, radix: 16) + "\r\n" + piece + "\r\n" }
        chunked += "0\r\n\r\n"
        let requests =
            Self.post("/buy", originalBody) + chunked + Self.post("/buy?dryRun=true", #"{"username":"joe"}"#)
            + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        try await app.test(.live) { client in
            let answers = try await Self.exchange(port: try #require(client.port), requests)
            #expect(answers.map(\.status) == [200, 200, 422, 200])
            #expect(answers[1].body.contains(#""message":"Message successfully sent to Kafka!""#))
            #expect(answers[3].body == "Success")
            #expect(publisher.events.count == 2)
            #expect(publisher.events.allSatisfy { $0.purchase.username == "joe" && $0.purchase.userid == "005" })
        }
    }

    /// Each line logged while a request is answered names the request (`hb.request.id`), one id
    /// per request, through the metadata provider the processes bootstrap logging with.
    @Test func eachLineLoggedWhileARequestIsAnsweredNamesTheRequest() async throws {
        var handler = InMemoryLogHandler()
        handler.metadataProvider = ShopTracing.loggingMetadataProvider
        let logged = handler
        let app = ShopHTTPServer.application(
            router: buildRouter(publisher: publisher, purchaseLists: .unreachable, receipts: publisher),
            idleTimeout: .seconds(10),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "cm-server"),
            logger: Logger(label: "cm-server") { _ in logged })
        try await app.test(.live) { client in
            for _ in 0..<2 {
                // Nothing listens where this router's cm-api is: cm-server logs "cm-api failed".
                try await client.execute(uri: "/getAllUserBuys/joe", method: .get) { response in
                    #expect(response.status == .badGateway)
                }
            }
        }
        let lines = handler.entries.filter { $0.message == "cm-api failed" }
        #expect(lines.count == 2)
        let ids = lines.compactMap { $0.metadata["hb.request.id"]?.description }
        #expect(ids.count == 2 && Set(ids).count == 2, "\(lines.map(\.metadata))")
        #expect(!handler.entries.contains { $0.message != "cm-api failed" && $0.metadata["hb.request.id"] != nil })
    }

    @Test func aBodyLongerThanTheServerTakesIsRefusedAtOnceAndTheConnectionGoesOn() async throws {
        // Over ShopHTTPServer.maximumBodyBytes, then a purchase on the same connection.
        let long = #"{"username":""# + String(repeating: "y", count: ShopHTTPServer.maximumBodyBytes * 2) + #""}"#
        let requests =
            Self.post("/buy", long) + Self.post("/buy", originalBody)
            + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        try await app.test(.live) { client in
            let answers = try await Self.exchange(port: try #require(client.port), requests)
            #expect(answers.map(\.status) == [413, 200, 200])
            #expect(answers[0].body.contains("larger than 16384 bytes"))
            #expect(publisher.events.count == 1)
        }
    }

    @Test func aBodyBetweenTheRoutesLimitAndTheServersIsRefusedByTheRoute() async throws {
        let long = #"{"username":""# + String(repeating: "y", count: 20_000) + #""}"#
        try await app.test(.live) { client in
            let answers = try await Self.exchange(
                port: try #require(client.port),
                Self.post("/buy", long) + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answers.map(\.status) == [413, 200])
            #expect(publisher.events.isEmpty)
        }
    }

    @Test func noRouteSeesABodyCutShort() async throws {
        // A route that would take more than the server does is refused the long body, not given
        // its first part.
        let router = Router()
        router.post("echo") { request, _ in
            var request = request
            return String(try await request.collectBody(upTo: 4 * ShopHTTPServer.maximumBodyBytes).readableBytes)
        }
        let app = ShopHTTPServer.application(
            router: router, idleTimeout: .seconds(10), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        let long = String(repeating: "y", count: ShopHTTPServer.maximumBodyBytes + 1)
        try await app.test(.live) { client in
            let answers = try await Self.exchange(
                port: try #require(client.port),
                Self.post("/echo", long) + Self.post("/echo", "1234")
                    + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answers.map(\.status) == [413, 200, 404])
            #expect(answers[1].body == "4")
        }
    }

    @Test func eachAnswerCarriesTheServersNameAndTheDate() async throws {
        try await app.test(.live) { client in
            let answers = try await Self.exchangeWithHeads(
                port: try #require(client.port),
                Self.post("/buy?dryRun=true", originalBody)
                    + "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answers.map(\.status) == [200, 404])
            for answer in answers {
                let fields = answer.head.lowercased().split(separator: "\r\n")
                #expect(fields.contains("server: cm-server"))
                // IMF-fixdate, e.g. "date: mon, 07 dec 2026 18:30:00 gmt"
                #expect(fields.contains { $0.hasPrefix("date: ") && $0.hasSuffix(" gmt") && $0.count == 35 })
            }
        }
    }

    @Test func aRequestThatCannotBeParsedIsAnswered400AfterThoseBeforeItAndTheConnectionClosed() async throws {
        try await app.test(.live) { client in
            // exchange returns once the server has closed the connection.
            let answers = try await Self.exchange(
                port: try #require(client.port),
                Self.post("/buy", originalBody) + "NOT HTTP AT ALL\r\n\r\n" + Self.post("/buy", originalBody))
            #expect(answers.map(\.status) == [200, 400])
            #expect(publisher.events.count == 1)
        }
    }

    @Test func aClientThatClosesItsSideGetsItsAnswersAndTheConnectionIsClosed() async throws {
        // As curl and most clients do after their last request: the server must not keep the
        // connection (and its file descriptor) open until the idle timeout.
        try await app.test(.live) { client in
            let answers = try await Self.exchange(
                port: try #require(client.port), Self.post("/buy", originalBody) + Self.post("/buy", originalBody),
                thenHalfClose: true)
            #expect(answers.map(\.status) == [200, 200])
            #expect(publisher.events.count == 2)
        }
    }

    /// A request target in absolute form (as a client sends it to a proxy) is routed by its
    /// path, like the origin form most clients send.
    @Test func aTargetInAbsoluteFormIsRoutedByItsPath() async throws {
        try await app.test(.live) { client in
            let answers = try await Self.exchange(
                port: try #require(client.port),
                "GET http://shop.example/healthz HTTP/1.1\r\nHost: shop.example\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answers.map(\.status) == [200, 200])
            #expect(answers.map(\.body) == ["Success", "Success"])
        }
    }

    /// HTTP_IDLE_TIMEOUT_MS: a connection that sends nothing, one stalled in the middle of a
    /// request (a body shorter than its Content-Length) and one left open after its answer are
    /// each closed once the timeout (1 s here) has passed since they last sent or were answered.
    @Test func idleAndStalledConnectionsAreClosedAfterTheIdleTimeout() async throws {
        let app = ShopHTTPServer.application(
            router: buildRouter(publisher: publisher, purchaseLists: .unreachable, receipts: publisher),
            idleTimeout: .seconds(1), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let stalled =
                "POST /buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"u"
            async let silent = Self.exchangeTimed(port: port, "")
            async let cut = Self.exchangeTimed(port: port, stalled)
            async let answered = Self.exchangeTimed(port: port, Self.post("/buy?dryRun=true", originalBody))
            let (silentClosed, cutClosed, afterAnswer) = try await (silent, cut, answered)
            for (what, elapsed) in [("silent", silentClosed.elapsed), ("stalled", cutClosed.elapsed)] {
                #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(4), "\(what): closed after \(elapsed)")
            }
            #expect(cutClosed.answers.isEmpty)
            #expect(afterAnswer.answers.map(\.status) == [200])
            #expect(afterAnswer.elapsed >= .milliseconds(900) && afterAnswer.elapsed < .seconds(4))
        }
        #expect(publisher.events.isEmpty)
    }

    /// The idle timeout counts the client's silence, not the server's: a request read whole and
    /// answered after longer than the timeout gets its answer.
    @Test func anAnswerSlowerThanTheIdleTimeoutIsNotCutOff() async throws {
        let reached = Flag()
        let (gate, openGate) = AsyncStream.makeStream(of: Void.self)
        let router = Router()
        router.get("slow") { _, _ in
            reached.raise()
            for await _ in gate {}  // held until the test has seen the idle timeout pass
            return "late"
        }
        let app = ShopHTTPServer.application(
            router: router, idleTimeout: .seconds(1), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            defer { openGate.finish() }
            let port = try #require(client.port)
            let slow = Task {
                try await Self.exchange(port: port, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            }
            try #require(try await waitUntil(timeout: .seconds(10), interval: .milliseconds(10)) { reached.isRaised })
            // A connection opened now and left silent is closed by the idle timeout; once it is,
            // the slow request's connection has been silent for longer than the timeout too.
            let silent = try await Self.exchangeTimed(port: port, "")
            #expect(silent.answers.isEmpty && silent.elapsed >= .milliseconds(900))
            openGate.finish()
            let answers = try await slow.value
            #expect(answers.map(\.status) == [200])
            #expect(answers.first?.body == "late")
        }
    }

    /// Graceful shutdown closes a connection left open between requests at once, not at its idle
    /// timeout (60 s here), and lets one being answered finish.
    @Test func shutdownClosesIdleConnectionsAtOnceAndFinishesAnswers() async throws {
        let reached = Mutex<Set<String>>([])
        let (gate, openGate) = AsyncStream.makeStream(of: Void.self)
        let router = Router()
        router.get("quick") { _, _ in
            reached.withLock { _ = $0.insert("quick") }
            return "quick"
        }
        router.get("slow") { _, _ in
            reached.withLock { _ = $0.insert("slow") }
            for await _ in gate {}  // in flight at shutdown, answered once the idle connection is closed
            return "finished"
        }
        let app = ShopHTTPServer.application(
            router: router, idleTimeout: .seconds(60), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        let shutdownStarted = Mutex<ContinuousClock.Instant?>(nil)
        let (idle, busy) = try await app.test(.live) { client in
            let port = try #require(client.port)
            let idle = Task {
                try await Self.exchangeTimed(
                    port: port, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n", deadline: .seconds(30))
            }
            // The slow answer waits for the idle connection to be closed (or to fail): shutdown
            // must close it while the slow one is still being answered.
            Task {
                _ = try? await idle.value
                openGate.finish()
            }
            let busy = Task {
                try await Self.exchangeTimed(
                    port: port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", deadline: .seconds(30))
            }
            // Shut down (leaving this closure) once the quick request is answered and the slow
            // one is in flight.
            let both = try await waitUntil(timeout: .seconds(10), interval: .milliseconds(10)) {
                reached.withLock { $0 == ["quick", "slow"] }
            }
            if !both { openGate.finish() }
            try #require(both)
            shutdownStarted.withLock { $0 = .now }
            return (idle, busy)
        }
        let idleClosed = try await idle.value
        let busyClosed = try await busy.value
        #expect(idleClosed.answers.map(\.status) == [200])
        #expect(busyClosed.answers.map(\.status) == [200])
        #expect(busyClosed.answers.first?.body == "finished")
        #expect(idleClosed.closedAt <= busyClosed.closedAt)
        let started = try #require(shutdownStarted.withLock { $0 })
        #expect(idleClosed.closedAt - started < .seconds(5), "the idle connection was closed at shutdown")
    }

    static func post(_ target: String, _ body: String) -> String {
        "POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// Sends `requests` on one connection and reads the answers until the server closes it (the
    /// last request asks it to, or `thenHalfClose` closes the client's side after sending).
    static func exchange(
        port: Int, _ requests: String, thenHalfClose: Bool = false
    ) async throws -> [(status: Int, body: String)] {
        try await exchangeWithHeads(port: port, requests, thenHalfClose: thenHalfClose).map { ($0.status, $0.body) }
    }

    /// Sends `requests` on one connection and reads until the server closes it: the answers,
    /// how long after sending that came and when. Fails past `deadline`.
    static func exchangeTimed(
        port: Int, _ requests: String, deadline: TimeAmount = .seconds(8)
    ) async throws -> (
        answers: [(status: Int, head: String, body: String)], elapsed: Duration,
        closedAt: ContinuousClock.Instant
    ) {
        let start = ContinuousClock.now
        let answers = try await exchangeWithHeads(port: port, requests, deadline: deadline)
        let closedAt = ContinuousClock.now
        return (answers, closedAt - start, closedAt)
    }

    struct ServerKeptTheConnectionOpen: Error {}

    final class Flag: Sendable {
        private let raised = Mutex(false)
        func raise() { raised.withLock { $0 = true } }
        var isRaised: Bool { raised.withLock { $0 } }
    }

    /// ``exchange(port:_:thenHalfClose:)`` with each answer's head (status line and header lines).
    /// Fails if the server has not closed the connection within 5 seconds (the test servers' idle
    /// timeout is 10).
    static func exchangeWithHeads(
        port: Int, _ requests: String, thenHalfClose: Bool = false, deadline timeout: TimeAmount = .seconds(5)
    ) async throws -> [(status: Int, head: String, body: String)] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        // The deadline: past it the client closes the connection itself, and the exchange fails.
        let timedOut = Flag()
        let deadline = channel.channel.eventLoop.scheduleTask(in: timeout) { [channel = channel.channel] in
            timedOut.raise()
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        var received = ByteBuffer()
        do {
            try await channel.executeThenClose { inbound, outbound in
                if !requests.isEmpty { try await outbound.write(ByteBuffer(string: requests)) }
                if thenHalfClose { outbound.finish() }
                for try await var chunk in inbound { received.writeBuffer(&chunk) }
            }
        } catch  where timedOut.isRaised {}
        if timedOut.isRaised { throw ServerKeptTheConnectionOpen() }
        var text = Substring(String(buffer: received))
        var answers: [(status: Int, head: String, body: String)] = []
        while let headEnd = text.range(of: "\r\n\r\n") {
            let head = text[..<headEnd.lowerBound]
            let status = Int(head.split(separator: " ")[1])!
            let length =
                head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .map { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))! } ?? 0
            let body = text[headEnd.upperBound...].utf8.prefix(length)
            answers.append((status, String(head), String(Substring(body))))
            text = text[body.endIndex...]
        }
        return answers
    }
}
