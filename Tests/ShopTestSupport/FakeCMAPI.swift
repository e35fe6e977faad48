import Foundation
public import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PurchaseDomain
public import PurchaseWire
public import Synchronization

/// A stand-in cm-api on a loopback port: records what it was asked and answers as told.
public final class FakeCMAPI: Sendable {
    public struct Asked: Sendable, Equatable {
        public var path: String
        public var username: String
        public var limit: String?
        public var cursor: String?

        public init(path: String, username: String, limit: String? = nil, cursor: String? = nil) {
            self.path = path
            self.username = username
            self.limit = limit
            self.cursor = cursor
        }
    }

    public enum Behaviour: Sendable {
        /// The page with its `ETag` (``tag(of:)``); 304 to a request whose `If-None-Match` is that tag.
        case page(PurchaseListPage)
        /// A 200 with this text, as it is.
        case text(String)
        case status(HTTPResponse.Status, String)
        case slow(Duration)
    }

    public let asked = Mutex<[Asked]>([])
    /// The `If-None-Match` of each list request, in order (`nil`: none).
    public let conditions = Mutex<[String?]>([])

    /// The `ETag` the fake gives `page`.
    public static func tag(of page: PurchaseListPage) -> String {
        "\"fake-\(page.purchases.map(\.purchaseId).joined(separator: "-"))-\(page.nextCursor ?? "last")\""
    }
    public let behaviour: Mutex<Behaviour>

    public init(_ behaviour: Behaviour) {
        self.behaviour = Mutex(behaviour)
    }

    /// Serves until `body` returns, passing it `host:port`.
    public func serving<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.get("buyList/:username") { request, context -> Response in
            let raw = context.parameters.get("username") ?? ""
            self.asked.withLock {
                $0.append(
                    Asked(
                        path: request.uri.path, username: raw.removingPercentEncoding ?? "<bad>",
                        limit: request.uri.queryParameters["limit"].map(String.init),
                        cursor: request.uri.queryParameters["cursor"].map(String.init)))
            }
            self.conditions.withLock { $0.append(request.headers[.ifNoneMatch]) }
            switch self.behaviour.withLock({ $0 }) {
            case .page(let page):
                let tag = Self.tag(of: page)
                if request.headers[.ifNoneMatch] == tag { return Response(status: .notModified, headers: [.eTag: tag]) }
                let data = try JSONEncoder().encode(page)
                return Response(
                    status: .ok, headers: [.contentType: "application/json", .eTag: tag],
                    body: .init(byteBuffer: ByteBuffer(bytes: data)))
            case .text(let text):
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: text)))
            case .status(let status, let body):
                return Response(
                    status: status, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: body)))
            case .slow(let delay):
                try await Task.sleep(for: delay)
                return Response(
                    status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"status":"Ok!","purchases":[]}"#)))
            }
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        // Quiet: it is cancelled mid-connection when the test is done.
        var logger = Logger(label: "fake-cm-api")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            defer { group.cancelAll() }
            var ports = portStream.makeAsyncIterator()
            guard let port = await ports.next(), port > 0 else { throw FakeCMAPIError() }
            return try await body("127.0.0.1:\(port)")
        }
    }
}

struct FakeCMAPIError: Error, CustomStringConvertible {
    var description: String { "the fake cm-api did not say which port it listens on" }
}
