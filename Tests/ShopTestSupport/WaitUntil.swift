/// Polls `condition` every `interval` until it holds or `timeout` has passed; returns whether it
/// held. Tests wait for the state they need this way, never for a fixed time.
public func waitUntil(
    timeout: Duration,
    interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while true {
        if try await condition() { return true }
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: interval)
    }
}
