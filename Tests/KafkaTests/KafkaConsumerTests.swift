import Foundation
import ShopTestSupport
import Synchronization
import Testing

@_spi(Testing) @testable import Kafka

@Suite(.serialized, .timeLimit(.minutes(3))) struct KafkaConsumerTests {
    @Test func tenThousandMessagesAreEachConsumedExactlyOnceByAGroup() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("ten-k")
        try cluster.createTopic(topic, partitions: 4)
        let group = uniqueName("group")
        let consumers = try (0..<2).map { _ in try cluster.makeConsumer(topic: topic, group: group) }
        let early = try await waitForAssignment(of: consumers, partitions: 4)
        #expect(early.allSatisfy { $0.isEmpty }, "nothing is produced yet")

        let producer = try cluster.makeProducer()
        try await withThrowingTaskGroup(of: Void.self) { sends in
            for chunk in stride(from: 0, to: 10_000, by: 1000) {
                sends.addTask {
                    try await withThrowingTaskGroup(of: KafkaDeliveryReport.self) { inner in
                        for i in chunk..<(chunk + 1000) {
                            inner.addTask {
                                try await producer.send(
                                    topic: topic, key: Array("user-\(i % 97)".utf8), value: Array("\(i)".utf8))
                            }
                        }
                        for try await _ in inner {}
                    }
                }
            }
            try await sends.waitForAll()
        }

        let consumed = ConsumedCount()
        let perConsumer = try await withThrowingTaskGroup(of: [KafkaConsumerMessage].self) { group in
            for consumer in consumers {
                group.addTask {
                    var mine: [KafkaConsumerMessage] = []
                    var quietSince = ContinuousClock.now
                    let deadline = ContinuousClock.now + .seconds(60)
                    // Until the members have all 10,000 between them and nothing new has arrived
                    // for 3 s since (a duplicate would show up here). A quiet window alone once
                    // ended before the first fetch on a busy CI machine: nothing consumed.
                    while ContinuousClock.now < deadline {
                        let batch = try await consumer.poll(maxMessages: 500, maxWait: .milliseconds(200))
                        try consumer.markProcessed(batch)
                        if !batch.isEmpty {
                            quietSince = .now
                            consumed.add(batch.count)
                        }
                        mine += batch
                        if consumed.total >= 10_000 && ContinuousClock.now - quietSince >= .seconds(3) { break }
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let all = perConsumer.flatMap { $0 }
        #expect(perConsumer.allSatisfy { !$0.isEmpty }, "both members consumed")
        #expect(all.count == 10_000)
        #expect(Set(all.map(\.text)) == Set((0..<10_000).map(String.init)))
        for consumer in consumers { await consumer.close() }
        await producer.shutdown()
    }

    /// An idle ingest polls with a long first wait: it must still take a message as it arrives,
    /// and come back empty only after the first wait.
    @Test func aLongFirstMessageWaitStillReturnsAMessageAsItArrives() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("first-wait")
        try cluster.createTopic(topic, partitions: 1)
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("group"))
        _ = try await waitForAssignment(of: [consumer], partitions: 1)

        let quiet = ContinuousClock.now
        let nothing = try await consumer.poll(
            maxMessages: 10, maxWait: .milliseconds(10), firstMessageWait: .seconds(1))
        #expect(nothing.isEmpty)
        #expect(ContinuousClock.now - quiet >= .seconds(1), "an empty poll waits the whole first wait")

        let producer = try cluster.makeProducer()
        let polling = Task {
            try await consumer.poll(maxMessages: 10, maxWait: .milliseconds(50), firstMessageWait: .seconds(60))
        }
        _ = try await producer.send(topic: topic, key: nil, value: Array("one".utf8))
        let sent = ContinuousClock.now
        let got = try await polling.value
        #expect(got.map { String(decoding: $0.value, as: UTF8.self) } == ["one"])
        // Far below the 60 s first wait: the poll returned with the message as it came.
        #expect(ContinuousClock.now - sent < .seconds(30))
        await consumer.close()
        await producer.shutdown()
    }

    /// Messages that came while the caller was busy are its next batch at once: the poll does
    /// not hold them for the batch window.
    @Test func messagesAlreadyQueuedAreReturnedWithoutWaitingForTheWindow() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("queued")
        try cluster.createTopic(topic, partitions: 1)
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("group"))
        _ = try await waitForAssignment(of: [consumer], partitions: 1)
        let producer = try cluster.makeProducer()
        _ = try await producer.send(topic: topic, key: nil, value: Array("first".utf8))
        let first = try await consumer.poll(maxMessages: 10, maxWait: .milliseconds(10), firstMessageWait: .seconds(30))
        #expect(first.count == 1)
        for number in 0..<5 { _ = try await producer.send(topic: topic, key: nil, value: Array("\(number)".utf8)) }
        // Fetched into the consumer's queue: the partition's watermark shows them.
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        #expect(try await waitUntil(timeout: .seconds(30)) { try consumer.lag()[partition] == 5 })
        let polled = ContinuousClock.now
        let batch = try await consumer.poll(maxMessages: 100, maxWait: .seconds(20), firstMessageWait: .seconds(60))
        #expect(batch.map { String(decoding: $0.value, as: UTF8.self) } == ["0", "1", "2", "3", "4"])
        #expect(ContinuousClock.now - polled < .seconds(10), "not held for the 20 s window")
        await consumer.close()
        await producer.shutdown()
    }

    @Test func oneKeysMessagesKeepTheirOrder() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("order")
        try cluster.createTopic(topic, partitions: 4)
        let producer = try cluster.makeProducer()
        // Each user's purchases are acknowledged one after another, users concurrently.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for user in 0..<8 {
                group.addTask {
                    for sequence in 0..<150 {
                        _ = try await producer.send(
                            topic: topic, key: Array("user-\(user)".utf8), value: Array("\(user):\(sequence)".utf8))
                    }
                }
            }
            try await group.waitForAll()
        }
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("g"))
        let received = try await consume(consumer, count: 1200)
        #expect(received.count == 1200)
        for user in 0..<8 {
            let mine = received.filter { $0.key == Array("user-\(user)".utf8) }
            #expect(mine.map(\.text) == (0..<150).map { "\(user):\($0)" })
            #expect(Set(mine.map(\.partition)).count == 1, "one key, one partition")
        }
        await consumer.close()
        await producer.shutdown()
    }

    @Test func aRestartedConsumerResumesFromTheCommittedOffsetWithNothingLost() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("resume")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try cluster.makeProducer()
        for i in 0..<200 {
            _ = try await producer.send(topic: topic, key: Array("k\(i % 5)".utf8), value: Array("\(i)".utf8))
        }
        let group = uniqueName("group")
        // No background commits during the test: only close can commit.
        let first = try cluster.makeConsumer(topic: topic, group: group, commitInterval: .seconds(3600))
        let firstHalf = try await consume(first, count: 100)
        #expect(firstHalf.count == 100)
        await first.close()

        let second = try cluster.makeConsumer(topic: topic, group: group)
        // The mock coordinator takes about 11 s to let the departed member go.
        let rest = try await consume(second, count: 100)
        let extra = try await consume(second, count: 1, timeout: .seconds(2))
        #expect(extra.isEmpty)
        #expect(rest.count == 100, "exactly the unprocessed half")
        #expect(Set(firstHalf.map(\.text)).isDisjoint(with: rest.map(\.text)))
        #expect(Set((firstHalf + rest).map(\.text)) == Set((0..<200).map(String.init)))
        await second.close()
        await producer.shutdown()
    }

    @Test func aMessageNotMarkedProcessedIsRedeliveredAfterRestart() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("redeliver")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try cluster.makeProducer()
        for i in 0..<10 { _ = try await producer.send(topic: topic, key: nil, value: Array("\(i)".utf8)) }
        let group = uniqueName("group")

        let first = try cluster.makeConsumer(topic: topic, group: group, commitInterval: .seconds(3600))
        let received = try await consume(first, count: 10, markProcessed: false)
        #expect(received.map(\.text) == (0..<10).map(String.init))
        try first.markProcessed(received.prefix(6))
        await first.close()

        let second = try cluster.makeConsumer(topic: topic, group: group)
        let redelivered = try await consume(second, count: 4)
        #expect(redelivered.map(\.text) == ["6", "7", "8", "9"])
        #expect(try await consume(second, count: 1, timeout: .seconds(2)).isEmpty)
        await second.close()
        await producer.shutdown()
    }

    /// librdkafka 2.0's mock coordinator sometimes (under load) answers a follower's SyncGroup
    /// that arrives after the leader's with INVALID_REQUEST; the follower rejoins at once and the
    /// group then refuses the leader's commit on revoke, which a real broker accepts. A run where
    /// that happens must count the refusal and lose nothing (the next owner re-reads from the last
    /// commit), and is tried again: one of at most three runs must show the commit itself.
    @Test func storedOffsetsAreCommittedWhenPartitionsAreRevoked() async throws {
        for _ in 1...3 {
            if try await revokeCommitRun() { return }
        }
        Issue.record("the mock refused the commit on revoke in three runs out of three")
    }

    /// One rebalance with half of each partition processed; whether the commit on revoke went
    /// through (and was then checked offset by offset).
    func revokeCommitRun() async throws -> Bool {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("revoke")
        try cluster.createTopic(topic, partitions: 4)
        let producer = try cluster.makeProducer()
        for i in 0..<400 {
            _ = try await producer.send(topic: topic, key: Array("k\(i)".utf8), value: Array("\(i)".utf8))
        }
        let group = uniqueName("group")
        // A commit interval far longer than the test: only the revoke can commit.
        let first = try cluster.makeConsumer(topic: topic, group: group, commitInterval: .seconds(3600))
        let all = try await consume(first, count: 400, markProcessed: false)
        #expect(all.count == 400)
        // Process half of each partition.
        var processed: [KafkaConsumerMessage] = []
        for partition in Int32(0)..<4 {
            let messages = all.filter { $0.partition == partition }
            processed += messages.prefix(messages.count / 2)
        }
        try first.markProcessed(processed)

        let second = try cluster.makeConsumer(topic: topic, group: group, commitInterval: .seconds(3600))
        // The first member keeps polling so that it takes part in the rebalance.
        let duringRebalance = try await waitForAssignment(of: [first, second], partitions: 4)
        #expect(duringRebalance[0].isEmpty, "the first member had already read everything")
        let moved = try second.assignment()
        #expect(!moved.isEmpty)
        let committed = try await second.committedOffsets(moved)
        let revokeCommitFailed = first.revokeCommitFailures > 0
        for partition in moved {
            let next = processed.filter { $0.topicPartition == partition }.map(\.offset).max().map { $0 + 1 }
            if revokeCommitFailed {
                #expect(committed[partition] == .some(next) || committed[partition] == .some(nil), "\(partition)")
            } else {
                #expect(committed[partition] == .some(next), "\(partition)")
            }
        }
        let expectedRest = all.filter { message in
            guard moved.contains(message.topicPartition) else { return false }
            let start = (committed[message.topicPartition] ?? nil) ?? 0
            return message.offset >= start
        }
        let rest = try await duringRebalance[1] + consume(second, count: expectedRest.count - duringRebalance[1].count)
        #expect(Set(rest.map(\.text)) == Set(expectedRest.map(\.text)))
        #expect(rest.count == expectedRest.count)
        #expect(try await consume(second, count: 1, timeout: .seconds(2)).isEmpty)
        await first.close()
        await second.close()
        await producer.shutdown()
        return !revokeCommitFailed
    }

    @Test func lagIsWhatIsOnThePartitionAndNotYetReceived() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("lag")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try cluster.makeProducer()
        for i in 0..<10 { _ = try await producer.send(topic: topic, key: nil, value: Array("\(i)".utf8)) }
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("g"))
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        var received: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while received.isEmpty, ContinuousClock.now < deadline {
            received += try await consumer.poll(maxMessages: 4, maxWait: .milliseconds(200))
        }
        #expect(try consumer.lag()[partition] == Int64(10 - received.count))
        for i in 10..<15 { _ = try await producer.send(topic: topic, key: nil, value: Array("\(i)".utf8)) }
        received += try await consume(consumer, count: 15 - received.count)
        #expect(received.count == 15)
        #expect(try consumer.lag()[partition] == 0)
        await consumer.close()
        await producer.shutdown()
    }

    @Test func pausedPartitionsDeliverNothingUntilResumed() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("pause")
        try cluster.createTopic(topic, partitions: 2)
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("g"))
        try await waitForAssignment(of: [consumer], partitions: 2)
        let paused = try await consumer.pause()
        #expect(paused.count == 2)

        let producer = try cluster.makeProducer()
        for i in 0..<20 { _ = try await producer.send(topic: topic, key: nil, value: Array("\(i)".utf8)) }
        let whilePaused = try await consume(consumer, count: 1, timeout: .seconds(2))
        #expect(whilePaused.isEmpty)

        try await consumer.resume()
        let afterResume = try await consume(consumer, count: 20)
        #expect(Set(afterResume.map(\.text)) == Set((0..<20).map(String.init)))
        await consumer.close()
        await producer.shutdown()
    }

    /// A paused consumer stays paused whatever the group gives it: partitions it gets in a
    /// rebalance while paused deliver nothing until it resumes (librdkafka's own pause covers only
    /// the partitions assigned when it is called).
    @Test func partitionsAssignedWhilePausedArePausedToo() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("pause-rebalance")
        try cluster.createTopic(topic, partitions: 4)
        let group = uniqueName("g")
        let first = try cluster.makeConsumer(topic: topic, group: group)
        let second = try cluster.makeConsumer(topic: topic, group: group)
        _ = try await waitForAssignment(of: [first, second], partitions: 4)
        try await first.pause()
        let producer = try cluster.makeProducer()
        for i in 0..<40 {
            _ = try await producer.send(topic: topic, key: Array("k\(i)".utf8), value: Array("\(i)".utf8))
        }
        // The second leaves: its two partitions come to the first, which is paused.
        await second.close()
        var delivered: [KafkaConsumerMessage] = []
        let regained = try await waitUntil(timeout: .seconds(30)) {
            delivered += try await first.poll(maxMessages: 100, maxWait: .milliseconds(100))
            return try first.assignment().count == 4
        }
        #expect(regained, "the first member has all four partitions again")
        delivered += try await consume(first, count: 1, timeout: .seconds(2), markProcessed: false)
        #expect(delivered.isEmpty, "\(delivered.count) messages delivered while paused")
        try await first.resume()
        let afterResume = try await consume(first, count: 40)
        #expect(Set(afterResume.map(\.text)) == Set((0..<40).map(String.init)))
        await first.close()
        await producer.shutdown()
    }

    /// Messages handed back with `seek` come again, from the offset given, also when the seek
    /// happens while paused (they come once resumed).
    @Test func seekHandsMessagesBackToBeDeliveredAgain() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("seek")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try cluster.makeProducer()
        for i in 0..<10 { _ = try await producer.send(topic: topic, key: nil, value: Array("\(i)".utf8)) }
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("g"))
        let all = try await consume(consumer, count: 10, markProcessed: false)
        #expect(all.map(\.text) == (0..<10).map(String.init))
        try await consumer.pause()
        try await consumer.seek([KafkaTopicPartition(topic: topic, partition: 0): 6])
        #expect(try await consume(consumer, count: 1, timeout: .seconds(1), markProcessed: false).isEmpty)
        try await consumer.resume()
        let again = try await consume(consumer, count: 4, markProcessed: false)
        #expect(again.map(\.text) == ["6", "7", "8", "9"])
        await consumer.close()
        await producer.shutdown()
    }

    /// A service group out of time cancels its services; the consumer's close still runs then:
    /// it commits what was processed and leaves the group (before, a cancelled close did nothing,
    /// and the member kept its partitions, heartbeating, until max.poll.interval.ms).
    @Test func closeFromACancelledTaskStillCommitsAndCloses() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("cancelled-close")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try cluster.makeProducer()
        for i in 0..<10 { _ = try await producer.send(topic: topic, key: nil, value: Array("m\(i)".utf8)) }
        let group = uniqueName("group")
        // A commit interval far longer than the test: only the close can commit.
        let first = try cluster.makeConsumer(topic: topic, group: group, commitInterval: .seconds(3600))
        #expect(try await consume(first, count: 10).count == 10)

        // The closing task cancels itself first, as a service group out of time would.
        await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            #expect(Task.isCancelled)
            await first.close()
        }.value

        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        let second = try cluster.makeConsumer(topic: topic, group: group)
        #expect(try await second.committedOffsets([partition]) == [partition: 10], "the close committed")
        await second.close()
        await producer.shutdown()
    }

    /// librdkafka's fatal error (raised with its test hook) is reported with its reason, and
    /// polling fails with it: what cm-api's liveness reads.
    @Test func aFatalErrorIsReportedAndPollingFailsWithIt() async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("fatal")
        try cluster.createTopic(topic, partitions: 1)
        let consumer = try cluster.makeConsumer(topic: topic, group: uniqueName("group"))
        #expect(consumer.fatalFailure == nil)
        #expect(consumer.raiseFatalErrorForTesting())
        let failure = try #require(consumer.fatalFailure)
        #expect(failure.code == .fatal && failure.message.contains("raised by a test"), "\(failure.message)")
        let error = await #expect(throws: KafkaError.self) {
            try await consumer.poll(maxMessages: 1, maxWait: .seconds(2))
        }
        #expect(error?.code == .fatal, "\(String(describing: error))")
        await consumer.close()
    }

    @Test func aClosedConsumerRefusesWork() async throws {
        let cluster = try KafkaMockCluster()
        let consumer = try cluster.makeConsumer(topic: uniqueName("closed"), group: uniqueName("g"))
        await consumer.close()
        await consumer.close()
        let error = await #expect(throws: KafkaError.self) { try await consumer.poll(maxMessages: 1, maxWait: .zero) }
        #expect(error?.code == .shutdown)
    }
}

/// Apart from `KafkaConsumerTests` so that its five cases run side by side: each has its own mock
/// cluster and spends its 2-10 s waiting in the join window, which in that suite's serial line
/// added 49 s to the longest suite of `swift test`.
@Suite(.timeLimit(.minutes(2))) struct KafkaConsumerCloseWhileJoiningTests {
    /// Closing during a join must neither hang nor abort: librdkafka 2.0 aborts the process when
    /// a cooperative-sticky member is closed between joining and its first assignment
    /// (confluentinc/librdkafka#4312), which `close` works around. That abort was seen once in
    /// this suite but is timing-dependent; this test drives close through the join window,
    /// where the mock joins slowest: right after another member left.
    @Test(arguments: [2, 4, 6, 8, 10])
    func closingWhileJoiningTheGroupIsBoundedAndSafe(afterSeconds delay: Int) async throws {
        let cluster = try KafkaMockCluster()
        let topic = uniqueName("joining")
        try cluster.createTopic(topic, partitions: 2)
        let group = uniqueName("g")
        let previous = try cluster.makeConsumer(topic: topic, group: group)
        try await waitForAssignment(of: [previous], partitions: 2)
        await previous.close()

        let consumer = try cluster.makeConsumer(topic: topic, group: group)
        let joinStart = ContinuousClock.now
        while ContinuousClock.now - joinStart < .seconds(delay) {
            _ = try await consumer.poll(maxMessages: 1, maxWait: .milliseconds(50))
        }
        let start = ContinuousClock.now
        await consumer.close()
        #expect(ContinuousClock.now - start < .seconds(20))
    }
}

/// Messages consumed so far by every member of a group.
private final class ConsumedCount: Sendable {
    private let count = Atomic<Int>(0)
    var total: Int { count.load(ordering: .relaxed) }
    func add(_ messages: Int) { count.add(messages, ordering: .relaxed) }
}
