"""The whole shop as `make run` starts it, through HTTP only (run by make test).

kafka-mock, SecantusDB, cm-api and cm-server are started by the launcher (shoptest/launcher.py, the
debug binaries, free ports, a throwaway data folder), each test with a shop of its own that is
stopped however the test ends. What is checked is what the README promises a client: the original
README's calls, 2,000 purchases from 20 clients all listed once and in order, the receipt turning
from 404 to 200, Idempotency-Key retries, cm-api stopped and restarted, Kafka taken down and back
through kafka-mock's signals.
"""

import concurrent.futures
import http.client
import json
import os
import signal
import time
import unittest
import urllib.parse
import uuid

from shoptest import ROOT, TOPIC
from shoptest.launcher import Shop
from shoptest.waiting import wait_for

ORIGINAL = '{"username":"joe","userid":"005","price":"1195.30","timestamp":"2024-05-31T15:54:32.204Z"}'


class Client:
    """One keep-alive HTTP/1.1 connection to a service."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body text) of one exchange."""
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.headers, response.read().decode()

    def get(self, path):
        status, _, body = self.request("GET", path)
        return status, body

    def buy(self, body, headers=None):
        status, _, text = self.request("POST", "/buy", body=body, headers=headers)
        return status, json.loads(text)

    def close(self):
        self.connection.close()


class EndToEnd(unittest.TestCase):
    def start_shop(self):
        shop = Shop(bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"))
        self.addCleanup(shop.stop)
        shop.start()
        self.server = Client(shop.server_url)
        self.api = Client(shop.api_url)
        self.addCleanup(self.server.close)
        self.addCleanup(self.api.close)
        return shop

    def purchases(self, username):
        """Every purchase of `username` through cm-server, all pages."""
        found, cursor = [], None
        path = "/getAllUserBuys/" + urllib.parse.quote(username, safe="")
        while True:
            status, body = self.server.get(path + "?limit=1000" + ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(status, 200, body)
            page = json.loads(body)
            found += page["purchases"]
            cursor = page.get("nextCursor")
            if cursor is None:
                return found

    def test_the_whole_shop(self):
        shop = self.start_shop()

        # The original README's three calls, unchanged.
        status, bought = self.server.buy(ORIGINAL)
        self.assertEqual(status, 200, bought)
        self.assertEqual(bought["status"], "Ok!")
        self.assertEqual(bought["message"], "Message successfully sent to Kafka!")
        self.assertEqual(self.server.get("/healthz"), (200, "Success"))
        joe = wait_for(lambda: self.purchases("joe"), 20)
        self.assertEqual([(p["purchaseId"], p["price"], p["timestamp"]) for p in joe],
                         [(bought["purchaseId"], "1195.30", "2024-05-31T15:54:32.204Z")])
        self.assertEqual(self.api.get("/purchases/%s" % uuid.uuid4())[0], 404)

        # A page that polls sends back its tag: 304 without a body, from cm-server and cm-api
        # alike (cm-server's tag is cm-api's), until a purchase changes the page.
        status, headers, first = self.server.request("GET", "/getAllUserBuys/joe")
        tag = headers["ETag"]
        self.assertEqual((status, headers["Cache-Control"]), (200, "private, no-cache"))
        for client, path in ((self.server, "/getAllUserBuys/joe"), (self.api, "/buyList/joe?limit=100")):
            status, headers, body = client.request("GET", path, headers={"If-None-Match": tag})
            self.assertEqual((status, headers["ETag"], body), (304, tag, ""), path)
        self.assertEqual(self.server.request("GET", "/getAllUserBuys/nobody",
                                             headers={"If-None-Match": tag})[0], 200, "another page")
        status, again = self.server.buy(ORIGINAL.replace("1195.30", "1.00"))
        self.assertEqual(status, 200, again)
        changed = wait_for(lambda: (lambda answer: answer[0] == 200 and answer)(
            self.server.request("GET", "/getAllUserBuys/joe", headers={"If-None-Match": tag})), 20, 0.1)
        self.assertTrue(changed, "the page with the new purchase, once stored")
        self.assertNotEqual(changed[1]["ETag"], tag)
        self.assertEqual(len(json.loads(changed[2])["purchases"]), 2)
        self.assertNotEqual(first, changed[2])

        # 2,000 purchases, 20 concurrent clients, 40 users: each listed once, newest first.
        def client(number):
            http_client = Client(shop.server_url)
            mine = []
            try:
                for n in range(100):
                    user = (number * 100 + n) % 40
                    body = json.dumps({"username": "shopper %d" % user, "userid": "u%d" % user,
                                       "price": "%d.%d0" % (n, number % 10),
                                       "timestamp": "2025-01-0%dT10:%02d:%02d.000Z" % (1 + number % 9, n // 60, n % 60)})
                    status, answer = http_client.buy(body)
                    mine.append((user, status, answer.get("purchaseId")))
            finally:
                http_client.close()
            return mine

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            sent = [each for batch in pool.map(client, range(20)) for each in batch]
        self.assertEqual(len(sent), 2000)
        self.assertEqual([s for s in sent if s[1] != 200], [])
        total = wait_for(lambda: sum(len(self.purchases("shopper %d" % user)) for user in range(40)) == 2000, 60, 0.5)
        self.assertTrue(total, "all 2,000 listed")
        for user in range(40):
            listed = self.purchases("shopper %d" % user)
            ids = [p["purchaseId"] for p in listed]
            self.assertEqual(sorted(ids), sorted(s[2] for s in sent if s[0] == user))
            # Same-format UTC timestamps sort as text; a space separates them from the id.
            order = ["%s %s" % (p["timestamp"], p["purchaseId"]) for p in listed]
            self.assertEqual(order, sorted(order, reverse=True), "newest first, purchaseId breaking ties")

        # Retries with the same Idempotency-Key store one purchase.
        retried = {self.server.buy('{"username":"careful","userid":"c1","price":"9.99"}',
                                   {"Idempotency-Key": "k-1"})[1]["purchaseId"] for _ in range(3)}
        self.assertEqual(len(retried), 1)

        # SIGTERM to cm-api exits 0; cm-server keeps taking purchases (the list is a 502 meanwhile).
        self.assertEqual(shop.kill("cm-api", signal.SIGTERM), 0, shop.processes["cm-api"].tail())
        status, while_down = self.server.buy('{"username":"careful","userid":"c1","price":"1.00"}')
        self.assertEqual(status, 200, "cm-server takes purchases while cm-api is down")
        self.assertEqual(self.server.get("/getAllUserBuys/careful")[0], 502)

        # The receipt: 404 while the purchase is not stored, 200 once it is. Kafka is taken down
        # before cm-api comes back, so it cannot store the purchase before the first read.
        shop.kafka_down()
        shop.start_service("cm-api")
        self.api = Client(shop.api_url)
        self.addCleanup(self.api.close)
        receipt = "/purchases/" + while_down["purchaseId"]
        self.assertEqual(self.api.get(receipt)[0], 404, "not stored yet: Kafka is down")
        shop.kafka_up()
        status, body = wait_for(lambda: (lambda answer: answer if answer[0] == 200 else None)(self.api.get(receipt)),
                                60, 0.2) or (None, "")
        self.assertEqual(status, 200, "stored once Kafka is back")
        self.assertEqual(json.loads(body)["purchase"]["price"], "1.00")
        careful = wait_for(lambda: len(self.purchases("careful")) == 2 and self.purchases("careful"), 30, 0.2)
        self.assertTrue(careful, "the retried purchase once, and the one made while cm-api was down")
        self.assertEqual(len(self.purchases("joe")), 2)

        # SIGTERM to both services: exit 0.
        self.assertEqual(shop.kill("cm-server", signal.SIGTERM), 0, shop.processes["cm-server"].tail())
        self.assertEqual(shop.kill("cm-api", signal.SIGTERM), 0, shop.processes["cm-api"].tail())

    def test_kafka_down_and_back_through_the_mocks_control(self):
        """cm-server turns not-ready and answers 503 at once while Kafka is down, and takes
        purchases again once it is back."""
        shop = self.start_shop()
        body = '{"username":"fault","userid":"f1","price":"2.50"}'
        self.assertEqual(self.server.buy(body)[0], 200)

        shop.kafka_down()
        self.assertTrue(wait_for(lambda: self.server.get("/readyz")[0] == 503, 20), "not ready while Kafka is down")
        started = time.monotonic()
        status, refused = self.server.buy(body, {"Idempotency-Key": "f-2"})
        self.assertEqual(status, 503)
        self.assertIs(refused["possiblyPersisted"], False)
        # The producer has heard ALL_BROKERS_DOWN by now: refused after its 0.5 s probe, not after
        # KAFKA_DELIVERY_TIMEOUT_MS (10 s).
        self.assertLess(time.monotonic() - started, 5, "a fast 503 while every broker is down")

        shop.kafka_up()
        accepted = wait_for(lambda: self.server.buy(body, {"Idempotency-Key": "f-2"})[0] == 200, 40, 0.2)
        self.assertTrue(accepted, "purchases are taken again once Kafka is back")
        listed = wait_for(lambda: len(self.purchases("fault")) == 2, 20, 0.2)
        self.assertTrue(listed, "the first purchase and the retried one, once")
        self.assertEqual(len(self.purchases("fault")), 2)

    def test_an_idempotency_key_answers_its_purchase_and_refuses_another(self):
        shop = self.start_shop()
        first = '{"username":"keyed","userid":"k-1","price":"5.00","timestamp":"2026-01-02T03:04:05.000Z"}'
        other = '{"username":"keyed","userid":"k-1","price":"6.00","timestamp":"2026-01-02T03:04:05.000Z"}'
        status, bought = self.server.buy(first, {"Idempotency-Key": "order-1"})
        self.assertEqual(status, 200, bought)
        purchase_id = bought["purchaseId"]
        self.assertTrue(wait_for(lambda: self.api.get("/purchases/" + purchase_id)[0] == 200, 30, 0.2))
        before = shop.topic_end_offsets()

        # The same request again: the first answer, marked as a replay, and nothing produced.
        status, headers, text = self.server.request("POST", "/buy", first,
                                                    {"Idempotency-Key": "order-1", "Content-Type": "application/json"})
        self.assertEqual(status, 200, text)
        self.assertEqual(headers.get("Idempotent-Replayed"), "true")
        replayed = json.loads(text)
        self.assertEqual((replayed["purchaseId"], replayed["partition"], replayed["offset"]),
                         (purchase_id, bought["partition"], bought["offset"]))
        # Another purchase under the key: 422 naming the key, nothing produced.
        status, refused = self.server.buy(other, {"Idempotency-Key": "order-1"})
        self.assertEqual(status, 422, refused)
        self.assertEqual([error["field"] for error in refused["errors"]], ["Idempotency-Key"])
        self.assertEqual(shop.topic_end_offsets(), before, "neither the replay nor the refusal produced anything")
        self.assertEqual([p["price"] for p in self.purchases("keyed")], ["5.00"])

        # The race: cm-api stopped, so cm-server cannot know the key is taken and produces both.
        # cm-api keeps the first and dead-letters the other with the cause an alert fires on.
        key = 'cmapi_events_dead_lettered_total{cause="idempotency_conflict"}'
        self.assertEqual(shop.kill("cm-api", signal.SIGTERM), 0)
        self.assertEqual(self.server.buy(first, {"Idempotency-Key": "order-2"})[0], 200)
        self.assertEqual(self.server.buy(other, {"Idempotency-Key": "order-2"})[0], 200)
        shop.start_service("cm-api")
        self.assertTrue(wait_for(lambda: shop.metric("cm-api", key) == 1, 30, 0.2), "the later one dead-lettered")
        code, out, err = shop.dlq("list", "--json", "--reason", "Idempotency-Key conflict")
        self.assertEqual(code, 0, err)
        [letter] = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(letter["key"], "k-1")
        self.assertEqual(sorted(p["price"] for p in self.purchases("keyed")), ["5.00", "5.00"])

    def test_a_purchase_mongodb_refuses_is_dead_lettered_and_redriven_once_the_cause_is_fixed(self):
        shop = self.start_shop()
        collection = shop.mongo_collection()
        # A validator against one user, as a schema change gone wrong would be.
        collection.database.command("collMod", collection.name, validator={"username": {"$ne": "refused"}})
        status, bought = self.server.buy('{"username":"refused","userid":"r-1","price":"3.00"}')
        self.assertEqual(status, 200, bought)
        purchase_id = bought["purchaseId"]

        def letters():
            code, out, err = shop.dlq("list", "--json", "--key", "r-1")
            self.assertEqual(code, 0, err)
            return [json.loads(line) for line in out.splitlines()]

        self.assertTrue(wait_for(lambda: letters(), 30, 0.5), "dead-lettered")
        [letter] = letters()
        self.assertEqual(letter["purchaseId"], purchase_id)
        self.assertEqual(letter["mongodbCode"], "121")
        self.assertIn("MongoDB refused the purchase", letter["reason"])
        self.assertEqual(letter["redrives"], 0)
        self.assertEqual(self.api.get("/purchases/" + purchase_id)[0], 404)
        self.assertEqual(self.purchases("refused"), [])

        code, out, _ = shop.dlq("show", letter["id"])
        self.assertEqual(code, 0)
        self.assertIn("header dlq-mongodb-code: 121", out)
        self.assertIn(purchase_id, out)
        self.assertEqual(shop.dlq("show", "0@999999")[0], 1)
        # Without a choice of letters a redrive refuses to run (exit 64, usage).
        self.assertEqual(shop.dlq("redrive")[0], 64)

        # A dry run sends nothing.
        code, out, err = shop.dlq("redrive", "--key", "r-1", "--dry-run")
        self.assertEqual(code, 0, err)
        self.assertIn("would redrive " + letter["id"], out)
        self.assertIn("1 would redrive", out)

        # The cause removed, the redrive stores it; redriven again it is still listed once.
        collection.database.command("collMod", collection.name, validator={})
        code, out, err = shop.dlq("redrive", "--reason", "mongodb refused", "--key", "r-1")
        self.assertEqual(code, 0, err)
        self.assertIn("1 redriven", out)
        self.assertTrue(wait_for(lambda: self.api.get("/purchases/" + purchase_id)[0] == 200, 30, 0.2))
        # Redriven again, it is not sent: each letter goes back once, and the list says where.
        code, out, err = shop.dlq("redrive", "--id", letter["id"])
        self.assertEqual(code, 0, err)
        self.assertIn("0 redriven, 1 redriven already", out)
        code, out, err = shop.dlq("list", "--json", "--key", "r-1")
        [listed_letter] = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(listed_letter["state"], "redriven")
        self.assertTrue(listed_letter["redrivenTo"].startswith(TOPIC + "["), listed_letter)
        self.assertEqual(shop.dlq("list", "--unhandled", "--key", "r-1")[1].splitlines()[-1],
                         f"0 dead letters on {TOPIC}.dlq match")
        listed = self.purchases("refused")
        self.assertEqual([p["purchaseId"] for p in listed], [purchase_id])


if __name__ == "__main__":
    unittest.main()
