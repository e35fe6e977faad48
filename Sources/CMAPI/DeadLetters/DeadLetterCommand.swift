import ArgumentParser
import Configuration
import Foundation
import Kafka
import Logging
import ShopKafka
import ShopService

/// `cm-api dlq`: the operator's hands on the dead-letter topic (docs/RELIABILITY.md, "Dead
/// letters", and the runbook in k8s/README.md).
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Lists, shows and redrives the purchases on the dead-letter topic (<KAFKA_TOPIC>.dlq).",
        discussion: """
            A purchase on the dead-letter topic was acknowledged to the customer but is not in their \
            list. Fix the cause first (the reason says it), then redrive: the purchase goes back to \
            the purchases topic unchanged and cm-api stores it once, however often it is redriven. \
            Reads KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_TLS, KAFKA_CA_LOCATION, KAFKA_USERNAME, \
            KAFKA_PASSWORD and KAFKA_SASL_MECHANISM as the service does; \
            joins no consumer group and commits nothing.
            """,
        subcommands: [List.self, Show.self, Redrive.self])

    /// Which letters: every option given must match.
    struct Filters: ParsableArguments {
        @Option(name: .customLong("id"), help: "A letter: topic[partition]@offset or partition@offset (repeatable).")
        var ids: [String] = []
        @Option(help: "Only letters whose reason contains this text (case-insensitive).")
        var reason: String?
        @Option(help: "Only letters from this source: a topic, topic[partition] or topic[partition]@offset.")
        var source: String?
        @Option(help: "Only letters with this key (the userid).")
        var key: String?
        @Option(help: "Only letters dead-lettered at or after this time (ISO 8601, e.g. 2026-12-02T20:00:00Z).")
        var since: String?
        @Option(help: "Only letters dead-lettered before this time (ISO 8601).")
        var until: String?

        func selection() throws -> DeadLetterSelection {
            DeadLetterSelection(
                ids: ids, reason: reason, source: source, key: key, since: try since.map(Self.instant),
                until: try until.map(Self.instant))
        }

        static func instant(_ text: String) throws -> Date {
            if let date = try? Date(text, strategy: .iso8601) { return date }
            if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
            throw ValidationError("'\(text)' is not an ISO 8601 time such as 2026-12-02T20:00:00Z")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lists dead letters: id, time, source, key, redrives, MongoDB's code and the reason.")
        @OptionGroup var filters: Filters
        @Flag(help: "One JSON object per line instead of text.")
        var json = false
        @Flag(help: "Only letters no redrive has sent back yet (unhandled or claimed).")
        var unhandled = false

        func run() async throws {
            let (selection, unhandled, json) = (try filters.selection(), self.unhandled, self.json)
            try await DeadLetterCommand.withTool { tool, _ in
                try await tool.list(selection, unhandled: unhandled, json: json)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Shows one dead letter whole: headers and value.")
        @Argument(help: "The letter: topic[partition]@offset or partition@offset.")
        var id: String

        func run() async throws {
            let found = try await DeadLetterCommand.withTool { tool, _ in try await tool.show(id) }
            if !found { throw ExitCode(1) }
        }
    }

    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sends chosen dead letters back to the purchases topic, after the cause was fixed.",
            discussion: """
                Each letter goes back with its key and value unchanged and a dlq-redrive-count header one \
                higher; one that fails again comes back to the dead-letter topic with that count, and is \
                not redriven past --max-redrives. Each letter is sent back at most once, however many runs \
                there are, at once or one after another: a run claims a letter on the dead-letter topic \
                before it sends it and marks it redriven after. Letters redriven already, claimed by \
                another run, and traces (records too large to dead-letter whole) are skipped. \
                Exits 1 if any send failed.
                """)
        @OptionGroup var filters: Filters
        @Flag(help: "Redrive every letter (when no filter is given).")
        var all = false
        @Flag(help: "Print what would be redriven; send nothing.")
        var dryRun = false
        @Option(help: "Skip letters already redriven this many times.")
        var maxRedrives = 3
        @Flag(
            help: """
                Also redrive letters claimed by a run that never said how it ended (it stopped mid-run): \
                it may have sent them; the store keeps one. Only when no other redrive is running.
                """)
        var retryClaimed = false

        func validate() throws {
            let chosen = try !filters.selection().isEmpty
            guard all || chosen else {
                throw ValidationError(
                    "choose letters with --id, --reason, --source, --key, --since or --until, or say --all")
            }
            guard maxRedrives >= 0 else { throw ValidationError("--max-redrives must be 0 or more") }
        }

        func run() async throws {
            let selection = try filters.selection()
            let (dryRun, maxRedrives, retryClaimed) = (self.dryRun, self.maxRedrives, self.retryClaimed)
            let summary = try await DeadLetterCommand.withTool { tool, kafka in
                guard !dryRun else {
                    return try await tool.redrive(selection, producer: nil, maximumRedrives: maxRedrives)
                }
                let producer = try KafkaProducer(
                    configuration: KafkaProducerConfiguration(kafka: kafka), logger: tool.reader.logger)
                let summary = try await tool.redrive(
                    selection, producer: producer, maximumRedrives: maxRedrives, retryClaimed: retryClaimed)
                await producer.shutdown()
                return summary
            }
            if summary.failed > 0 { throw ExitCode(1) }
        }
    }

    /// Reads the Kafka settings from the environment (exit 78 on a bad one), and runs `body` with
    /// the tool; a Kafka error ends the command with its message and exit status 1.
    static func withTool<T>(_ body: (DeadLetterTool, KafkaConfiguration) async throws -> T) async throws -> T {
        let (kafka, topic, level) = await ServiceMain.configuration(of: "cm-api dlq") {
            config throws(ConfigurationError) in
            (
                try KafkaConfiguration(config: config), config.text("kafka.topic", default: "scalable-shop-purchases"),
                try Logger.Level(config: config, default: .warning)
            )
        }
        // Logs go to standard error: standard output is the command's answer.
        var logger = Logger(label: "cm-api-dlq") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = level
        let tool = DeadLetterTool(reader: KafkaTopicReader(kafka: kafka, logger: logger), topic: topic) { line in
            print(line)
        }
        // A redrive is traced: its send links to the letter's own trace (docs/OBSERVABILITY.md).
        let exporter = await ServiceMain.observability(of: "cm-api-dlq")
        do {
            return try await ServiceMain.withExporter(exporter) { try await body(tool, kafka) }
        } catch let error as KafkaError {
            FileHandle.standardError.write(Data("cm-api dlq: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}
