"""The harness speaks the services' dead-letter vocabulary: the topic suffix and every header name in
shoptest/kafka.py are the ones Sources/PurchaseWire/DeadLetter/DeadLetterTopic.swift defines for
the ingest, `cm-api dlq` and kafka-mock (a file read, no build needed)."""

import re
import unittest
from pathlib import Path

from shoptest import ROOT, kafka

SWIFT = Path(ROOT) / "Sources" / "PurchaseWire" / "DeadLetter" / "DeadLetterTopic.swift"


class DeadLetterVocabularyTests(unittest.TestCase):
    def setUp(self):
        self.source = SWIFT.read_text()

    def test_the_topic_suffix_is_the_services(self):
        [suffix] = re.findall(r'public static let suffix = "([^"]+)"', self.source)
        self.assertEqual(kafka.DEAD_LETTER_SUFFIX, suffix)
        self.assertEqual(kafka.dead_letter_topic("shop"), "shop" + suffix)

    def test_every_header_is_named_as_the_services_name_it(self):
        header = self.source[self.source.index("public enum Header {"):self.source.index("public enum Marker")]
        swift = {re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper().replace("MONGO_D_B", "MONGODB"): value
                 for name, value in re.findall(r'public static let (\w+) = "([^"]+)"', header)}
        python = {name: value for name, value in vars(kafka.DeadLetterHeader).items() if name.isupper()}
        self.assertTrue(swift, "no header found in " + str(SWIFT))
        self.assertEqual(python, swift)
