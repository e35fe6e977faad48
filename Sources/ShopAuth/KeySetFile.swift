import Foundation
import JWTKit
public import Logging
public import ServiceLifecycle
public import ShopService
import Synchronization

/// The verification keys of a JSON Web Key Set file (`AUTH_JWKS_FILE`), read again when it
/// changes. Kubernetes updates a mounted ConfigMap in place (an atomic swap of its `..data`
/// link), so an identity provider's new key reaches the pods without a restart; a file that no
/// longer parses, or holds no usable key, leaves the keys in use as they were.
public final class KeySetFile: Sendable {
    /// The keys one reading of the file gave.
    struct KeySet: Sendable {
        let keys: JWTKeyCollection
        /// Each key id's one algorithm.
        let algorithmByKeyID: [String: String]
        /// The file's text, to tell a change from a touch.
        let json: String
    }

    /// What a reading changed.
    public enum Reload: Sendable, Equatable {
        case unchanged
        /// The key ids now accepted.
        case replaced(keyIDs: [String])
    }

    public let path: String
    private let state: Mutex<State>

    private struct State {
        var keySet: KeySet
        var lastUnknownKeyIDRead: ContinuousClock.Instant?
    }

    /// A token with an unknown key id has the file read again at most this often, so made-up key
    /// ids cannot turn every request into a file read.
    static let unknownKeyIDInterval = Duration.seconds(1)

    init(path: String, json: String) async throws(ConfigurationError) {
        self.path = path
        state = Mutex(State(keySet: try await Self.parse(json, path: path)))
    }

    var current: KeySet { state.withLock { $0.keySet } }

    /// The key ids accepted now, sorted.
    public var keyIDs: [String] { current.algorithmByKeyID.keys.sorted() }

    /// Reads the file; replaces the keys when its text changed and it holds a usable key set.
    /// Throws, keeping the keys in use, when it cannot be read or used.
    @discardableResult
    public func reload() async throws(ConfigurationError) -> Reload {
        guard let data = FileManager.default.contents(atPath: path), let json = String(data: data, encoding: .utf8)
        else {
            throw ConfigurationError(variable: "AUTH_JWKS_FILE", reason: "cannot be read: \(path)")
        }
        if json == current.json { return .unchanged }
        let keySet = try await Self.parse(json, path: path)
        state.withLock { $0.keySet = keySet }
        return .replaced(keyIDs: keySet.algorithmByKeyID.keys.sorted())
    }

    /// The keys after reading the file again, unless it was read for an unknown key id less than
    /// ``unknownKeyIDInterval`` ago.
    func refreshForUnknownKeyID(now: ContinuousClock.Instant = .now) async -> KeySet {
        let due = state.withLock { state in
            if let last = state.lastUnknownKeyIDRead, now - last < Self.unknownKeyIDInterval { return false }
            state.lastUnknownKeyIDRead = now
            return true
        }
        if due { _ = try? await reload() }
        return current
    }

    static func parse(_ json: String, path: String) async throws(ConfigurationError) -> KeySet {
        let invalid = { (reason: String) in ConfigurationError(variable: "AUTH_JWKS_FILE", reason: reason) }
        let jwks: JWKS
        do {
            jwks = try JSONDecoder().decode(JWKS.self, from: Data(json.utf8))
        } catch {
            throw invalid("is not a JSON Web Key Set: \(path)")
        }
        let keys = JWTKeyCollection()
        var algorithms: [String: String] = [:]
        for jwk in jwks.keys {
            guard let kid = jwk.keyIdentifier?.string, let algorithm = algorithm(of: jwk) else { continue }
            guard jwk.privateExponent == nil else {
                throw invalid("holds a private key (kid \(kid)): mount the public keys only")
            }
            do {
                try await keys.add(jwk: jwk)
            } catch {
                throw invalid("has a key jwt-kit cannot use (kid \(kid)): \(error)")
            }
            algorithms[kid] = algorithm
        }
        guard !algorithms.isEmpty else {
            throw invalid("has no RS256 or ES256 (P-256) signing key with a kid: \(path)")
        }
        return KeySet(keys: keys, algorithmByKeyID: algorithms, json: json)
    }

    /// The one algorithm a JWK may verify: RS256 for an RSA key, ES256 for a P-256 key; `nil`
    /// for anything else (an encryption key, another curve or algorithm), which is skipped.
    static func algorithm(of jwk: JWK) -> String? {
        let declared = jwk.algorithm?.rawValue
        switch jwk.keyType {
        case .rsa where declared == nil || declared == "RS256": return "RS256"
        case .ecdsa where jwk.curve == .ecdsa(.p256) && (declared == nil || declared == "ES256"): return "ES256"
        default: return nil
        }
    }
}

/// Reads the key set file again every `interval` (`AUTH_JWKS_RELOAD_S`) and logs what changed;
/// a service of the application, so it stops with it.
public struct KeySetReloader: Service {
    let file: KeySetFile
    let interval: Duration
    let logger: Logger

    public init(file: KeySetFile, interval: Duration, logger: Logger) {
        self.file = file
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failing = false
            // A periodic check, not a synchronisation: no change notification survives
            // Kubernetes' swap of a ConfigMap volume's symlink on every file system.
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                guard !Task.isCancelled else { return }
                do {
                    if case .replaced(let keyIDs) = try await self.file.reload() {
                        self.logger.notice(
                            "Key set reloaded", metadata: ["path": "\(self.file.path)", "kids": "\(keyIDs)"])
                    }
                    failing = false
                } catch {
                    // Once per failure, not every interval: the keys in use stay as they were.
                    if !failing {
                        self.logger.error(
                            "Key set file not reloaded; the keys in use stay",
                            metadata: [
                                "path": "\(self.file.path)", "error": "\(error)", "kids": "\(self.file.keyIDs)",
                            ])
                    }
                    failing = true
                }
            }
        }
    }
}
