public import Foundation
public import Mongo

#if canImport(Glibc)
    import Glibc
#endif

/// A SecantusDB server (MongoDB wire protocol) this process starts, stops and restarts.
public final class SecantusServer: @unchecked Sendable {
    public let port: Int
    public let storage: URL
    private var process: Process?

    /// `SECANTUSD` (set by shoptest/servers.py), else the repository's `.venv`.
    public static var executable: String {
        if let path = ProcessInfo.processInfo.environment["SECANTUSD"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".venv/bin/secantusd-py").path
    }

    public init() throws {
        port = try freeLoopbackPort()
        storage = FileManager.default.temporaryDirectory.appendingPathComponent("secantus-\(UUID().uuidString)")
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: storage)
    }

    public func uri(serverSelectionTimeoutMS: Int = 5000) -> String {
        "mongodb://127.0.0.1:\(port)/?serverSelectionTimeoutMS=\(serverSelectionTimeoutMS)&connectTimeoutMS=1000"
    }

    /// Starts the server (again, on the same port and storage) and waits until it accepts.
    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = [
            "--host", "127.0.0.1", "--port", String(port), "--storage-path", storage.path, "--log-level", "WARNING",
            // configureFailPoint: tests make MongoDB refuse writes as a real deployment can.
            "--enable-test-commands",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(60)
        while !canConnect(port: port) {
            guard Date() < deadline, process.isRunning else {
                throw MongoTestError("SecantusDB (\(Self.executable)) did not start on port \(port)")
            }
            usleep(100_000)
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a
    /// server that hangs or a network that drops packets.
    public func pause() {
        if let process { kill(process.processIdentifier, SIGSTOP) }
    }

    /// Thaws a frozen server (SIGCONT).
    public func resume() {
        if let process { kill(process.processIdentifier, SIGCONT) }
    }

    /// Stops the server: SIGTERM, then SIGKILL after 5 s, since it waits for connected
    /// clients (a pool never disconnects on its own) before it exits.
    public func stop() {
        guard let process, process.isRunning else { return }
        resume()
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }
}

public struct MongoTestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The server `make test` started (`MONGODB_TEST_URI`), or one started for this process.
public enum SharedServer {
    private static let ownServer: Result<SecantusServer, any Error> = Result { try SecantusServer() }

    public static func uri() throws -> String {
        if let uri = ProcessInfo.processInfo.environment["MONGODB_TEST_URI"] { return uri }
        return try ownServer.get().uri()
    }
}

/// A client on the shared server and a `purchases` collection in a database of its own.
public func makeCollection() throws -> MongoCollection {
    let client = try MongoClient(uri: try SharedServer.uri())
    let database = "test-\(UUID().uuidString.prefix(8).lowercased())"
    return client.collection("purchases", database: database)
}

public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw MongoTestError("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { rebound -> Int32 in
            guard bind(fd, rebound, length) == 0 else { return -1 }
            return getsockname(fd, rebound, &length)
        }
    }
    guard bound == 0 else { throw MongoTestError("bind() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

public func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
