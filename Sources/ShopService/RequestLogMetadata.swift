public import Logging

/// The request a log line was written for: its id (`hb.request.id`, as Hummingbird names it) on
/// every line logged while the request is answered, added when the line is written.
///
/// Setting the id on each request's `Logger` instead (`logger[metadataKey:] = …`, as
/// Hummingbird's `Application` does) makes swift-log's `StreamLogHandler` format its metadata
/// again at once, for every request whether it logs or not: ~5,200 of cm-server's ~167,000
/// instructions a dry run (issue 31, callgrind). The id is a task-local here, read by
/// ``provider`` only when a line is written.
public enum RequestLogMetadata {
    /// The id of the request the current task is answering.
    @TaskLocal public static var requestID: Logger.MetadataValue?

    /// Adds `hb.request.id` to a line written while a request is answered.
    public static let provider = Logger.MetadataProvider {
        guard let requestID else { return [:] }
        return ["hb.request.id": requestID]
    }
}
