import Foundation
import Kafka
import Logging
import PurchaseDomain
import PurchaseWire
import ShopKafka

/// What `cm-api dlq` does, apart from parsing its arguments: reads the dead-letter topic,
/// selects letters, and sends chosen ones back to the purchases topic. Everything it does is
/// written to `output`, one line each.
struct DeadLetterTool: Sendable {
    let reader: KafkaTopicReader
    /// The purchases topic; the dead letters are on `<topic>.dlq`.
    let topic: String
    let output: @Sendable (String) -> Void

    var deadLetterTopic: String { DeadLetterTopic.name(of: topic) }

    /// What the tool does on Kafka: reads the dead-letter topic with partitions it assigns itself
    /// (no group), writes its claim and settle markers there, and redrives to the purchases topic.
    static func kafkaAccess(topic: String) -> KafkaAccess {
        var access = KafkaAccess()
        access.consume(DeadLetterTopic.name(of: topic), group: nil)
        access.produce(to: DeadLetterTopic.name(of: topic))
        access.produce(to: topic)
        return access
    }

    /// The letters on the dead-letter topic and what the redrive's markers say about them.
    func read() async throws(KafkaError) -> (letters: [DeadLetter], ledger: RedriveLedger) {
        var letters: [DeadLetter] = []
        var ledger = RedriveLedger()
        for record in try await reader.readAll(deadLetterTopic) {
            if !ledger.apply(record) { letters.append(DeadLetter(record: record)) }
        }
        return (letters, ledger)
    }

    func letters(_ selection: DeadLetterSelection) async throws(KafkaError) -> [DeadLetter] {
        try await read().letters.filter(selection.matches)
    }

    /// - Parameter unhandled: only letters no redrive has sent back (claimed ones included).
    func list(_ selection: DeadLetterSelection, unhandled: Bool = false, json: Bool) async throws(KafkaError) {
        let (all, ledger) = try await read()
        let letters = all.filter { selection.matches($0) && (!unhandled || !ledger.state(of: $0.id).isRedriven) }
        for letter in letters {
            let state = ledger.state(of: letter.id)
            if json {
                var object = letter.json
                object["state"] = state.name
                object["redrivenTo"] = state.redrivenTo
                object["claimedBy"] = state.claimedBy
                output(Self.jsonLine(object))
            } else {
                output(letter.line + "  state=\(state.description)")
            }
        }
        if !json { output("\(letters.count) dead letters on \(deadLetterTopic) match") }
    }

    /// Prints one letter whole: its headers and its value (as text where it is UTF-8).
    /// - Returns: whether it was found.
    func show(_ id: String) async throws(KafkaError) -> Bool {
        let (letters, ledger) = try await read()
        guard let letter = letters.first(where: DeadLetterSelection(ids: [id]).matches) else {
            output("no dead letter \(id) on \(deadLetterTopic)")
            return false
        }
        output(letter.line)
        output("state: \(ledger.state(of: letter.id).description)")
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
        /// Sent back by an earlier run (or a concurrent one that claimed it first).
        var skippedRedriven = 0
        /// Claimed by a run that has not said how it ended: running now, or stopped mid-run.
        var skippedClaimed = 0
        var failed = 0
    }

    /// Produces each selected letter to the purchases topic again (key and value unchanged,
    /// `dlq-redrive-count` one higher), at most once whatever other runs do: it skips a trace (only
    /// the start of the record is there), a letter redriven `maximumRedrives` times already, and a
    /// letter a run has redriven or claimed. The others it claims (a ``DeadLetterTopic/Marker``
    /// on the letter's partition), reads the topic again, sends those whose first claim is its own,
    /// and marks each `redriven` or, when the send failed, `released`.
    ///
    /// A run stopped between its claim and its outcome leaves the letter claimed: later runs skip
    /// it (it may have been sent) until an operator passes `retryClaimed`, which releases such
    /// claims first. The store is idempotent on the purchaseId, so a letter sent twice that way is
    /// still stored once.
    func redrive(
        _ selection: DeadLetterSelection, producer: KafkaProducer?, maximumRedrives: Int, retryClaimed: Bool = false
    ) async throws(KafkaError) -> RedriveSummary {
        var summary = RedriveSummary()
        let run = UUID().uuidString.lowercased()
        let (letters, ledger) = try await read()
        var chosen: [(letter: DeadLetter, release: String?)] = []
        for letter in letters where selection.matches(letter) {
            var release: String?
            switch ledger.state(of: letter.id) {
            case .redriven(let to):
                summary.skippedRedriven += 1
                output("skipped \(letter.id): redriven already, to \(to)")
                continue
            case .claimed(let owner, let at) where !retryClaimed:
                summary.skippedClaimed += 1
                output(
                    "skipped \(letter.id): claimed by redrive run \(owner) at \(at.map { $0.formatted(.iso8601) } ?? "-") "
                        + "with no outcome (running, or stopped mid-run: see --retry-claimed)")
                continue
            case .claimed(let owner, _): release = owner
            case .unhandled: break
            }
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
            chosen.append((letter, release))
        }
        guard let producer else {
            for (letter, _) in chosen {
                summary.redriven += 1
                output("would redrive \(letter.id) to \(topic) (redrive \(letter.redrives + 1)): \(letter.reason)")
            }
            output(summary.line(verb: "would redrive"))
            return summary
        }

        // Claim every chosen letter, then read again: the letters whose first claim is this run's
        // are this run's to send.
        var claimed: [DeadLetter] = []
        for (letter, release) in chosen {
            do {
                if let release { try await mark(letter, .released, run: release, producer: producer) }
                try await mark(letter, .claim, run: run, producer: producer)
                claimed.append(letter)
            } catch {
                summary.failed += 1
                output("FAILED \(letter.id): could not claim it: \(error.message)")
            }
        }
        let after = claimed.isEmpty ? ledger : try await read().ledger
        for letter in claimed {
            guard case .claimed(run, _) = after.state(of: letter.id) else {
                summary.skippedRedriven += 1
                output("skipped \(letter.id): another redrive run claimed it first")
                continue
            }
            do {
                // A new trace for the redrive, linked to the purchase's own; the record carries
                // the redrive's context, so the batch that stores it links to the redrive.
                let report = try await producer.tracedSend(
                    topic: topic, key: letter.record.key, value: letter.record.value, headers: letter.redriveHeaders,
                    links: KafkaTracing.context(of: letter.record.headers).map { [$0] } ?? [],
                    newTrace: KafkaTracing.newTrace(following: [letter.record.headers]))
                let to = "\(report.topic)[\(report.partition)]@\(report.offset)"
                summary.redriven += 1
                output("redriven \(letter.id) to \(to) (redrive \(letter.redrives + 1)): \(letter.reason)")
                do {
                    try await mark(letter, .redriven, run: run, to: to, producer: producer)
                } catch {
                    output("WARNING \(letter.id) was sent but not marked redriven (\(error.message)): it stays claimed")
                }
            } catch {
                summary.failed += 1
                output("FAILED \(letter.id): \(error.message)")
                try? await mark(letter, .released, run: run, producer: producer)
            }
        }
        output(summary.line(verb: "redriven"))
        return summary
    }

    /// Writes a marker about `letter` to its own partition, and waits for the broker's acknowledgement.
    func mark(
        _ letter: DeadLetter, _ marker: DeadLetterTopic.Marker, run: String, to: String? = nil,
        producer: KafkaProducer
    ) async throws(KafkaError) {
        typealias Header = DeadLetterTopic.Header
        var headers = [
            KafkaHeader(name: Header.marker, value: Array(marker.rawValue.utf8)),
            KafkaHeader(name: Header.letter, value: Array(letter.id.utf8)),
            KafkaHeader(name: Header.run, value: Array(run.utf8)),
        ]
        if let to { headers.append(KafkaHeader(name: Header.redrivenTo, value: Array(to.utf8))) }
        _ = try await producer.send(
            topic: deadLetterTopic, key: nil, value: Array("\(marker.rawValue) \(letter.id)".utf8), headers: headers,
            partition: letter.record.partition)
    }

    static func jsonLine(_ object: [String: Any]) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

extension DeadLetterTool.RedriveSummary {
    func line(verb: String) -> String {
        "\(redriven) \(verb), \(skippedRedriven) redriven already, \(skippedClaimed) claimed by another run, "
            + "\(skippedTraces) traces skipped, \(skippedAtMaximum) at the maximum skipped, \(failed) failed"
    }
}

/// What the redrive's markers on the dead-letter topic say about each letter, read in offset order
/// (all markers of a letter are on its partition, so every reader sees them in the same order):
/// the first claim of an unhandled letter owns it; only the owner's `redriven` or `released` settles it.
struct RedriveLedger: Sendable {
    enum State: Hashable, Sendable, CustomStringConvertible {
        case unhandled
        case claimed(run: String, at: Date?)
        case redriven(to: String)

        var isRedriven: Bool { if case .redriven = self { true } else { false } }
        var name: String {
            switch self {
            case .unhandled: "unhandled"
            case .claimed: "claimed"
            case .redriven: "redriven"
            }
        }
        var redrivenTo: String? { if case .redriven(let to) = self { to } else { nil } }
        var claimedBy: String? { if case .claimed(let run, _) = self { run } else { nil } }
        var description: String {
            switch self {
            case .unhandled: "unhandled"
            case .claimed(let run, let at): "claimed by run \(run) at \(at.map { $0.formatted(.iso8601) } ?? "-")"
            case .redriven(let to): "redriven to \(to)"
            }
        }
    }

    private var states: [String: State] = [:]

    func state(of letter: String) -> State { states[letter] ?? .unhandled }

    /// Takes in `record` if it is a marker.
    /// - Returns: whether it was one (a marker is never a letter).
    mutating func apply(_ record: KafkaConsumerMessage) -> Bool {
        typealias Header = DeadLetterTopic.Header
        func header(_ name: String) -> String? {
            record.headers.last { $0.name == name }.flatMap(\.value).map { String(decoding: $0, as: UTF8.self) }
        }
        guard let kind = header(Header.marker) else { return false }
        guard let marker = DeadLetterTopic.Marker(rawValue: kind), let letter = header(Header.letter),
            let run = header(Header.run)
        else { return true }
        switch (marker, state(of: letter)) {
        case (.claim, .unhandled):
            states[letter] = .claimed(
                run: run, at: record.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        case (.released, .claimed(run, _)):
            states[letter] = .unhandled
        case (.redriven, .claimed(run, _)):
            states[letter] = .redriven(to: header(Header.redrivenTo) ?? "-")
        default:
            break
        }
        return true
    }
}
