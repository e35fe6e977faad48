import Foundation
import Kafka
import PurchaseDomain
import PurchaseWire

/// A record on the dead-letter topic, read through the headers cm-api puts on it
/// (docs/RELIABILITY.md, "Dead letters"): why it is there, where it came from, and how often an
/// operator sent it back already.
struct DeadLetter: Sendable {
    /// The record on the dead-letter topic.
    let record: KafkaConsumerMessage

    /// Its place on the dead-letter topic, `topic[partition]@offset`: how an operator names it.
    var id: String { "\(record.topic)[\(record.partition)]@\(record.offset)" }
    /// `dlq-reason`: why cm-api could not store it.
    var reason: String { header(Header.reason) ?? "" }
    /// `dlq-source`: the purchases topic, partition and offset it was read from.
    var source: String { header(Header.source) ?? "" }
    /// `dlq-mongodb-code`: MongoDB's error code, when MongoDB refused it.
    var mongoDBCode: String? { header(Header.mongoDBCode) }
    /// `dlq-trace`: set when this is a bounded trace, not the record (it was too large to copy).
    var trace: String? { header(Header.trace) }
    /// `dlq-redrive-count`: how many times it was redriven before it came back here.
    var redrives: Int { header(Header.redriveCount).flatMap { Int($0) } ?? 0 }
    /// When it was dead-lettered (the record's timestamp).
    var deadLetteredAt: Date? {
        record.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }
    var key: String? { record.key.map { String(decoding: $0, as: UTF8.self) } }
    /// The purchase it carries, when it is a well-formed purchase event.
    var purchaseID: String? {
        (try? PurchaseEvent(kafkaValue: record.value)).map { $0.purchaseId.lowercasedString }
    }

    typealias Header = DeadLetterTopic.Header

    func header(_ name: String) -> String? {
        record.headers.last { $0.name == name }.flatMap(\.value).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The record to produce to the purchases topic again: key and value unchanged, the original
    /// headers without cm-api's dead-letter ones, the redrive count one higher and this letter's id.
    var redriveHeaders: [KafkaHeader] {
        let ours: Set = [
            Header.reason, Header.source, Header.mongoDBCode, Header.trace, Header.redriveCount,
            Header.redrivenFrom,
        ]
        return record.headers.filter { !ours.contains($0.name) } + [
            KafkaHeader(name: Header.redriveCount, value: Array(String(redrives + 1).utf8)),
            KafkaHeader(name: Header.redrivenFrom, value: Array(id.utf8)),
        ]
    }

    /// One line for `cm-api dlq list`.
    var line: String {
        let time = deadLetteredAt.map { $0.formatted(.iso8601) } ?? "-"
        var fields = [id, time, "source=\(source)", "key=\(key ?? "-")", "redrives=\(redrives)"]
        if let mongoDBCode { fields.append("mongodb-code=\(mongoDBCode)") }
        if trace != nil { fields.append("TRACE") }
        fields.append("reason=\(reason)")
        return fields.joined(separator: "  ")
    }

    /// The letter as one JSON object (`--json`).
    var json: [String: Any] {
        var object: [String: Any] = [
            "id": id, "source": source, "reason": reason, "redrives": redrives, "trace": trace != nil,
            "valueBytes": record.value.count,
        ]
        object["deadLetteredAt"] = deadLetteredAt?.formatted(.iso8601)
        object["key"] = key
        object["mongodbCode"] = mongoDBCode
        object["purchaseId"] = purchaseID
        return object
    }
}

/// Which dead letters a command acts on; every criterion given must match.
struct DeadLetterSelection: Sendable {
    /// Letter ids (`topic[partition]@offset`, or `partition@offset` on the dead-letter topic).
    var ids: [String] = []
    /// Text the reason contains (case-insensitive).
    var reason: String?
    /// The start of `dlq-source`: a topic, `topic[partition]`, or one record `topic[partition]@offset`.
    var source: String?
    var key: String?
    /// Dead-lettered at or after / before.
    var since: Date?
    var until: Date?

    var isEmpty: Bool { ids.isEmpty && reason == nil && source == nil && key == nil && since == nil && until == nil }

    func matches(_ letter: DeadLetter) -> Bool {
        if !ids.isEmpty {
            let short = "\(letter.record.partition)@\(letter.record.offset)"
            guard ids.contains(letter.id) || ids.contains(short) else { return false }
        }
        if let reason, !letter.reason.localizedCaseInsensitiveContains(reason) { return false }
        if let source {
            // "purchases[1]" must not match "purchases[10]@…": a partition ends at "]".
            guard
                letter.source == source || letter.source.hasPrefix(source.hasSuffix("]") ? source + "@" : source + "[")
            else { return false }
        }
        if let key, !(letter.key?.hasSameBytes(as: key) ?? false) { return false }
        if let since, (letter.deadLetteredAt ?? .distantPast) < since { return false }
        if let until, (letter.deadLetteredAt ?? .distantFuture) >= until { return false }
        return true
    }
}
