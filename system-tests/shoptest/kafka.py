"""Kafka for the harness, through confluent-kafka (an independent client): the dead-letter topic's
vocabulary, offsets, and reading what a scenario added to a topic.

The vocabulary is the contract's (docs/CONTRACT.md, "Kafka"), defined for the services in
Sources/PurchaseWire/DeadLetter/DeadLetterTopic.swift; test_vocabulary.py in system-tests/launcher
holds the two to the same names.
"""

import contextlib
import json
import time
import uuid

from shoptest import TOPIC

DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic=TOPIC):
    """`<topic>.dlq`: where cm-api puts the events of `topic` it cannot store."""
    return topic + DEAD_LETTER_SUFFIX


class DeadLetterHeader:
    """The headers cm-api and `cm-api dlq` put on dead-letter records."""
    REASON = "dlq-reason"
    SOURCE = "dlq-source"
    MONGODB_CODE = "dlq-mongodb-code"
    TRACE = "dlq-trace"
    REDRIVE_COUNT = "dlq-redrive-count"
    REDRIVEN_FROM = "dlq-redriven-from"
    MARKER = "dlq-marker"
    LETTER = "dlq-letter"
    RUN = "dlq-run"
    REDRIVEN_TO = "dlq-redriven-to"


@contextlib.contextmanager
def probe(bootstrap, group="offsets-probe"):
    """A consumer that commits nothing, closed on leaving: for offsets and reading topics."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    try:
        yield consumer
    finally:
        consumer.close()


def partitions(consumer, topic):
    """The topic's partition numbers, sorted."""
    return sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)


def watermarks(consumer, topic):
    """{partition: (low, end offset)} of a topic."""
    from confluent_kafka import TopicPartition

    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions(consumer, topic)}


def end_offsets(bootstrap, topic=TOPIC):
    """{partition: end offset} of a topic."""
    with probe(bootstrap) as consumer:
        return {p: end for p, (_, end) in watermarks(consumer, topic).items()}


def group_offsets(consumer, topic):
    """{partition: (committed offset or None, end offset)} of the group `consumer` was made for."""
    from confluent_kafka import TopicPartition

    ends = watermarks(consumer, topic)
    committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    return {tp.partition: (tp.offset if tp.offset >= 0 else None, ends[tp.partition][1]) for tp in committed}


class DeadLetterReader:
    """The dead-letter topic from where it ended when this was made: what a scenario added."""

    def __init__(self, bootstrap, topic=TOPIC):
        self.bootstrap, self.topic = bootstrap, dead_letter_topic(topic)
        # Reading from offset 0 fails once kafka-mock has dropped a partition's oldest messages
        # (it keeps a few MB per partition; the poison bursts' 900 KB events fill that), and the
        # consumer then jumps to the end and misses them.
        self.start = end_offsets(bootstrap, self.topic)
        self.trimmed = []

    def read(self, timeout=30):
        """[(key, value, headers dict)] of every record added since, in order per partition."""
        from confluent_kafka import TopicPartition

        with probe(self.bootstrap, group=f"dlq-check-{uuid.uuid4().hex[:8]}") as consumer:
            partitions, ends = [], {}
            for partition, (low, end) in watermarks(consumer, self.topic).items():
                start = self.start.get(partition, 0)
                if low > start:
                    self.trimmed.append(partition)
                ends[partition] = end
                partitions.append(TopicPartition(self.topic, partition, start))
            consumer.assign(partitions)
            records = []
            remaining = {tp.partition for tp in partitions if ends[tp.partition] > tp.offset}
            deadline = time.monotonic() + timeout
            while remaining and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                if message.offset() >= ends[message.partition()] - 1:
                    remaining.discard(message.partition())
                headers = {name: value for name, value in (message.headers() or [])}
                records.append((message.key() or b"", message.value() or b"", headers))
            return records

    def purchase_ids(self):
        """The purchaseIds of the well-formed events among them."""
        ids = set()
        for _, value, _ in self.read():
            try:
                ids.add(json.loads(value)["purchaseId"])
            except (ValueError, KeyError, TypeError, RecursionError):
                pass  # not a purchase event (the poison bursts' deeply nested arrays among them)
        return ids
