"""The reliability suite make test runs: bad input, fuzzing, and faults under load.

One shop (debug binaries unless BIN_DIR says otherwise) serves the whole module, with a 3 s
HTTP idle timeout and a 1 s cm-api timeout so that stalled requests and a stalled cm-api show
within seconds. The classes run in the order of their names:

    Test1BadInput   the corpus in shoptest/bad_input.py: each request gets its documented status and the
                    contract's JSON error, nothing reaches Kafka, both services stay healthy
    Test2Fuzz       schemathesis against both OpenAPI documents: no 5xx, no answer outside its
                    schema, no schema-invalid request accepted, no request slower than 10 s
    Test3Faults     each scenario of shoptest/faults.py under load, then the exact accounting:
                    nothing acknowledged missing, nothing stored twice

make soak (shoptest/soak.py) is the long version: ten minutes, a random fault every 30 s.
"""

import os
import unittest
import warnings

from shoptest import bad_input, faults
from shoptest.bad_input import IDLE_TIMEOUT_S
from shoptest.fuzzing import fuzz
from shoptest.launcher import Shop

SHOP = None


def setUpModule():
    global SHOP
    # The load's keep-alive connections live in its threads and are closed when they are
    # collected; Python reports each as unclosed.
    warnings.simplefilter("ignore", ResourceWarning)
    SHOP = Shop(env={"HTTP_IDLE_TIMEOUT_MS": IDLE_TIMEOUT_S * 1000, "CM_API_TIMEOUT_MS": 1000},
                test_commands=True).start()


def tearDownModule():
    SHOP.stop()


class ShopTestCase(unittest.TestCase):
    def assertHealthy(self, after):
        for service in ("cm-server", "cm-api"):
            self.assertTrue(SHOP.healthy(service), f"{service} unhealthy after {after}:\n{SHOP.logs(15)}")


class Test1BadInput(ShopTestCase):
    def test_every_bad_request_gets_its_documented_error_and_nothing_is_produced(self):
        cases = bad_input.corpus()
        names = [case[0] for case in cases]
        # The corpus as documented (docs/TESTING.md, docs/RELIABILITY.md): a case lost or renamed is seen
        # here, and every case answered without JSON (BARE) must be one of the corpus.
        self.assertEqual(len(cases), 117, "the corpus changed: update the count here and in the docs")
        self.assertEqual(len(set(names)), len(names), "case names are unique")
        self.assertEqual({case[1] for case in cases}, {"cm-server", "cm-api"})
        self.assertEqual(bad_input.BARE - set(names), set(), "BARE names cases that exist")
        offsets = SHOP.topic_end_offsets()
        produced = {key: value for key, value in SHOP.metrics("cm-server").items()
                    if key.startswith("kafka_produce_duration_seconds_count")}
        failures = []
        for name, service, data, allowed, check in cases:
            port = SHOP.ports["server" if service == "cm-server" else "api"]
            answer = bad_input.send(port, data)
            problem = bad_input.judge(name, allowed, check, answer, IDLE_TIMEOUT_S)
            if problem:
                failures.append(f"{name}: {problem}")
            self.assertHealthy(name)
        self.assertEqual(failures, [], "\n".join(failures))
        self.assertEqual(SHOP.topic_end_offsets(), offsets, "a refused request reached the topic")
        after = {key: value for key, value in SHOP.metrics("cm-server").items()
                 if key.startswith("kafka_produce_duration_seconds_count")}
        self.assertEqual(after, produced, "cm-server tried to produce for a refused request")
        print(f"\n  bad input: {len(cases)} requests, each answered as documented; topic offsets unchanged")


class Test2Fuzz(ShopTestCase):
    EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))

    def fuzz(self, service):
        result, summary = fuzz(SHOP, service, self.EXAMPLES)
        print(f"\n  {summary}")
        self.assertEqual(result.returncode, 0, result.stdout[-8000:] + result.stderr[-2000:])
        self.assertHealthy(f"fuzzing {service}")

    def test_cm_server_against_its_openapi_document(self):
        self.fuzz("cm-server")

    def test_cm_api_against_its_openapi_document(self):
        self.fuzz("cm-api")


class Test3Faults(ShopTestCase):
    PACE = faults.Pace()

    def scenario(self, name):
        report = faults.run(name, SHOP, self.PACE)
        print(f"\n  {report.line}")
        self.assertEqual(report.problems, [], f"{report.line}\n{SHOP.logs(20)}")
        self.assertGreater(report.accounting.acknowledged, 0)
        self.assertHealthy(name)

    def test_kafka_broker_outage(self):
        self.scenario("kafka-broker-outage")

    def test_mongodb_killed_and_restarted(self):
        self.scenario("mongodb-killed-and-restarted")

    def test_cm_api_sigkill(self):
        self.scenario("cm-api-sigkill")

    def test_cm_server_sigterm(self):
        self.scenario("cm-server-sigterm")

    def test_cm_server_sigkill(self):
        self.scenario("cm-server-sigkill")

    def test_poison_burst(self):
        self.scenario("poison-burst")

    def test_cm_api_stalled(self):
        self.scenario("cm-api-stalled")

    def test_mongodb_refuses_documents(self):
        self.scenario("mongodb-refuses-documents")

    def test_mongodb_permanent_error(self):
        self.scenario("mongodb-permanent-error")

    def test_mongodb_long_outage(self):
        # 20 s here; make test-long-outage holds MongoDB down for 3 minutes.
        self.scenario("mongodb-long-outage")


if __name__ == "__main__":
    unittest.main(verbosity=2)
