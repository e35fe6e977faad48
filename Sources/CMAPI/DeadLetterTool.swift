import Events
import Foundation
import Kafka
import Logging

/// What `cm-api dlq` does, apart from parsing its arguments: reads the dead-letter topic,
/// selects letters, and sends chosen ones back to the purchases topic. Everything it does is
/// written to `output`, one line each.
struct DeadLetterTool: Sendable {
    let reader: KafkaTopicReader
    /// The purchases topic; the dead letters are on `<topic>.dlq`.
    let topic: String
    let output: @Sendable (String) -> Void

    var deadLetterTopic: String { DeadLetterTopic.name(of: topic) }

    func letters(_ selection: DeadLetterSelection) async throws(KafkaError) -> [DeadLetter] {
        try await reader.readAll(deadLetterTopic).map(DeadLetter.init).filter(selection.matches)
    }

    func list(_ selection: DeadLetterSelection, json: Bool) async throws(KafkaError) {
        let letters = try await letters(selection)
        for letter in letters {
            output(json ? Self.jsonLine(letter.json) : letter.line)
        }
        if !json { output("\(letters.count) dead letters on \(deadLetterTopic) match") }
    }

    /// Prints one letter whole: its headers and its value (as text where it is UTF-8).
    /// - Returns: whether it was found.
    func show(_ id: String) async throws(KafkaError) -> Bool {
        guard let letter = try await letters(DeadLetterSelection(ids: [id])).first else {
            output("no dead letter \(id) on \(deadLetterTopic)")
            return false
        }
        output(letter.line)
        output("purchaseId: \(letter.purchaseID ?? "- (not a well-formed purchase event)")")
        for header in letter.record.headers {
            output("header \(header.name): \(header.value.map { String(decoding: $0, as: UTF8.self) } ?? "(null)")")
        }
        output("value (\(letter.record.value.count) bytes):")
        output(String(validating: letter.record.value, as: UTF8.self) ?? "(not UTF-8) \(letter.record.value)")
        return true
    }

    /// What a redrive did.
    struct RedriveSummary: Hashable, Sendable {
        var redriven = 0
        var skippedTraces = 0
        var skippedAtMaximum = 0
        var failed = 0
    }

    /// Produces each selected letter to the purchases topic again (key and value unchanged,
    /// `dlq-redrive-count` one higher), unless it is a trace (only the start of the record is
    /// there) or was redriven `maximumRedrives` times already. The store is idempotent on the
    /// purchaseId, so a letter redriven twice is stored once.
    func redrive(
        _ selection: DeadLetterSelection, producer: KafkaProducer?, maximumRedrives: Int
    ) async throws(KafkaError) -> RedriveSummary {
        var summary = RedriveSummary()
        let verb = producer == nil ? "would redrive" : "redriven"
        for letter in try await letters(selection) {
            if letter.trace != nil {
                summary.skippedTraces += 1
                output("skipped \(letter.id): a trace holds only the start of the record (see dlq show)")
                continue
            }
            if letter.redrives >= maximumRedrives {
                summary.skippedAtMaximum += 1
                output(
                    "skipped \(letter.id): redriven \(letter.redrives) times already (--max-redrives \(maximumRedrives))"
                )
                continue
            }
            guard let producer else {
                summary.redriven += 1
                output("\(verb) \(letter.id) to \(topic) (redrive \(letter.redrives + 1)): \(letter.reason)")
                continue
            }
            do {
                let report = try await producer.send(
                    topic: topic, key: letter.record.key, value: letter.record.value, headers: letter.redriveHeaders)
                summary.redriven += 1
                output(
                    "\(verb) \(letter.id) to \(report.topic)[\(report.partition)]@\(report.offset) "
                        + "(redrive \(letter.redrives + 1)): \(letter.reason)")
            } catch {
                summary.failed += 1
                output("FAILED \(letter.id): \(error.message)")
            }
        }
        output(
            "\(summary.redriven) \(verb), \(summary.skippedTraces) traces skipped, "
                + "\(summary.skippedAtMaximum) at the maximum skipped, \(summary.failed) failed")
        return summary
    }

    static func jsonLine(_ object: [String: Any]) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
