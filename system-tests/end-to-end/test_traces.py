"""One purchase followed end to end in traces (docs/OBSERVABILITY.md), as an operator's tracing backend
would receive it: the shop started by the launcher with the standard OTEL_* variables pointing at an
independent OTLP/HTTP receiver (shoptest/otlp.py, the OpenTelemetry project's own protobuf definitions),
and the span graph asserted: the client's trace honoured, SERVER -> PRODUCER with the broker's partition
and offset, the record's headers carrying the context to cm-api's CONSUMER batch span that links to it,
the MongoDB insert under that; the list read and the receipt lookup as one trace across both services;
a dead-lettered purchase redriven and still connected to its original trace; log lines carrying the
trace; and with tracing off, nothing sent and no header.
"""

import json
import os
import re
import subprocess
import unittest
import urllib.parse

from shoptest import ROOT, TOPIC
from shoptest.launcher import Shop
from shoptest.otlp import Receiver
from shoptest.waiting import wait_for

BIN_DIR = os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def request(url, method, path, body=None, headers=None):
    """(status, headers, body) of one exchange."""
    import http.client
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    answer = response.status, response.headers, response.read().decode()
    connection.close()
    return answer


def traceresponse(headers):
    """(trace id, span id) of a traceresponse header."""
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]", headers.get("traceresponse") or "")
    return match.groups() if match else (None, None)


class Traces(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver().__enter__()
        cls.addClassCleanup(cls.receiver.__exit__)
        cls.shop = Shop(bin_dir=BIN_DIR, env=cls.receiver.environment())
        cls.addClassCleanup(cls.shop.stop)
        cls.shop.start()

    def spans(self, find, what, timeout=30):
        found = self.receiver.wait_for(find, timeout)
        self.assertTrue(found, f"{what}; received: {[(s.service, s.kind, s.name) for s in self.receiver.received()]}")
        return found

    @staticmethod
    def one(spans, **match):
        """The spans matching every field given (`attributes` as a subset)."""
        wanted = dict(match)
        attributes = wanted.pop("attributes", {})
        return [s for s in spans if all(s[k] == v for k, v in wanted.items())
                and all(s.attributes.get(k) == v for k, v in attributes.items())]

    def test_a_purchase_from_the_click_to_mongodb(self):
        traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        status, headers, body = request(self.shop.server_url, "POST", "/buy",
                                        '{"username":"traced","userid":"t-1","price":"9.99"}',
                                        {"traceparent": traceparent, "tracestate": "shop=1"})
        self.assertEqual(status, 200, body)
        bought = json.loads(body)
        trace, server_span = traceresponse(headers)
        self.assertEqual(trace, CLIENT_TRACE, "the client's trace is honoured and named in the answer")

        def purchase_graph(spans):
            servers = self.one(spans, service="cm-server", kind="server", trace_id=CLIENT_TRACE, span_id=server_span)
            producers = self.one(spans, service="cm-server", kind="producer", trace_id=CLIENT_TRACE,
                                 parent=server_span)
            if not servers or not producers:
                return None
            producer = producers[0]
            consumers = [s for s in self.one(spans, service="cm-api", kind="consumer")
                         if any(link["span_id"] == producer.span_id and link["trace_id"] == CLIENT_TRACE
                                for link in s.links)]
            if not consumers:
                return None
            inserts = self.one(spans, service="cm-api", kind="client", parent=consumers[0].span_id,
                               trace_id=consumers[0].trace_id, name="insert purchases")
            return inserts and (servers[0], producer, consumers[0], inserts[0])

        server, producer, consumer, insert = self.spans(purchase_graph, "the purchase's span graph")
        # SERVER: the route, the answer, a child of the client's span.
        self.assertEqual(server.parent, CLIENT_SPAN)
        self.assertEqual(server.attributes["http.request.method"], "POST")
        self.assertEqual(server.attributes["http.route"], "/buy")
        self.assertEqual(server.attributes["http.response.status_code"], 200)
        # PRODUCER: ends on the broker's acknowledgement, where the answer says it was stored.
        self.assertEqual(producer.name, f"send {TOPIC}")
        self.assertEqual(producer.attributes["messaging.system"], "kafka")
        self.assertEqual(producer.attributes["messaging.operation.type"], "send")
        self.assertEqual(producer.attributes["messaging.destination.name"], TOPIC)
        self.assertEqual(producer.attributes["messaging.destination.partition.id"], str(bought["partition"]))
        self.assertEqual(producer.attributes["messaging.kafka.offset"], bought["offset"])
        self.assertEqual(producer.attributes["messaging.kafka.message.key"], "t-1")
        self.assertLessEqual(producer.end, server.end)
        self.assertEqual(producer.status, "unset")
        # CONSUMER: a batch of its own trace, linked to the record's creation context.
        self.assertEqual(consumer.name, f"process {TOPIC}")
        self.assertEqual(consumer.parent, "")
        self.assertNotEqual(consumer.trace_id, CLIENT_TRACE)
        self.assertEqual(consumer.attributes["messaging.system"], "kafka")
        self.assertEqual(consumer.attributes["messaging.destination.name"], TOPIC)
        self.assertEqual(consumer.attributes["messaging.consumer.group.name"], "scalable-shop")
        self.assertGreaterEqual(consumer.attributes["messaging.batch.message_count"], 1)
        [link] = [link for link in consumer.links if link["span_id"] == producer.span_id]
        self.assertEqual(link["attributes"]["messaging.kafka.offset"], bought["offset"])
        self.assertEqual(link["attributes"]["messaging.destination.partition.id"], str(bought["partition"]))
        # CLIENT: the bulk insert under the batch.
        self.assertEqual(insert.attributes["db.system.name"], "mongodb")
        self.assertEqual(insert.attributes["db.operation.name"], "insert")
        self.assertEqual(insert.attributes["db.collection.name"], "purchases")
        self.assertGreaterEqual(insert.attributes["db.operation.batch.size"], 1)
        self.assertTrue(consumer.start <= insert.start <= insert.end <= consumer.end)
        if os.environ.get("TRACE_DUMP"):
            with open(os.environ["TRACE_DUMP"], "w") as out:
                json.dump([server, producer, consumer, insert], out, indent=1)

    def test_a_list_read_is_one_trace_across_both_services(self):
        status, headers, body = request(self.shop.server_url, "GET", "/getAllUserBuys/nobody-yet")
        self.assertEqual(status, 200, body)
        trace, server_span = traceresponse(headers)
        self.assertIsNotNone(trace, "a new trace without a traceparent")
        self.assert_one_trace(trace, server_span, "/getAllUserBuys/{username}", "/buyList/{username}")

    def test_the_receipt_lookup_of_a_keyed_purchase_is_one_trace(self):
        status, headers, body = request(self.shop.server_url, "POST", "/buy",
                                        '{"username":"keyed","userid":"k-9","price":"1.00"}',
                                        {"Idempotency-Key": "trace-receipt-1"})
        self.assertEqual(status, 200, body)
        trace, server_span = traceresponse(headers)
        self.assert_one_trace(trace, server_span, "/buy", "/purchases/{purchaseId}")

    def assert_one_trace(self, trace, server_span, route, api_route):
        """cm-server's SERVER span -> its HTTP CLIENT span -> cm-api's SERVER span -> a MongoDB find."""
        def graph(spans):
            in_trace = self.one(spans, trace_id=trace)
            clients = self.one(in_trace, service="cm-server", kind="client", parent=server_span)
            apis = [s for s in self.one(in_trace, service="cm-api", kind="server")
                    if clients and s.parent == clients[0].span_id]
            finds = apis and self.one(in_trace, service="cm-api", kind="client", parent=apis[0].span_id,
                                      name="find purchases")
            servers = self.one(in_trace, service="cm-server", kind="server", span_id=server_span)
            return finds and servers and (servers[0], clients[0], apis[0], finds[0])

        server, client, api, find = self.spans(graph, f"one trace for {route}")
        self.assertEqual(server.attributes["http.route"], route)
        self.assertEqual(client.attributes["http.request.method"], "GET")
        self.assertEqual(api.attributes["http.route"], api_route)
        self.assertEqual(find.attributes["db.system.name"], "mongodb")
        self.assertEqual(find.attributes["db.operation.name"], "find")

    def test_a_dead_lettered_purchase_redriven_stays_connected_to_its_trace(self):
        collection = self.shop.mongo_collection()
        collection.database.command("collMod", collection.name, validator={"username": {"$ne": "refused"}})
        self.addCleanup(collection.database.command, "collMod", collection.name, validator={})
        status, headers, body = request(self.shop.server_url, "POST", "/buy",
                                        '{"username":"refused","userid":"r-7","price":"3.00"}')
        self.assertEqual(status, 200, body)
        purchase_id = json.loads(body)["purchaseId"]
        trace, server_span = traceresponse(headers)

        def dead_lettered(spans):
            [producer] = self.one(spans, service="cm-server", kind="producer", trace_id=trace) or [None]
            if producer is None:
                return None
            dlq = [s for s in self.one(spans, service="cm-api", kind="producer", name=f"send {TOPIC}.dlq")
                   if any(link["span_id"] == producer.span_id for link in s.links)]
            return dlq and (producer, dlq[0])

        producer, dlq_send = self.spans(dead_lettered, "the dead-letter send, linked to the purchase")
        batch = self.one(self.receiver.received(), span_id=dlq_send.parent)
        self.assertEqual(batch[0].kind, "consumer", "the dead-letter send is a child of the batch")
        # The write MongoDB refused is an error span with the failure's class.
        [insert] = self.one(self.receiver.received(), parent=batch[0].span_id, name="insert purchases")
        self.assertEqual((insert.status, insert.attributes["error.type"]), ("error", "refused"))
        self.assertEqual(dlq_send.status, "unset")
        self.assertEqual(dlq_send.attributes["messaging.destination.name"], TOPIC + ".dlq")
        # The letter keeps the purchase's own trace headers.
        code, out, err = self.shop.dlq("list", "--json", "--key", "r-7")
        self.assertEqual(code, 0, err)
        [letter] = [json.loads(line) for line in out.splitlines()]
        code, out, err = self.shop.dlq("show", letter["id"])
        self.assertIn(f"header traceparent: 00-{trace}-{producer.span_id}-01", out)
        # A log line written while the batch's span was active names its trace.
        with open(self.shop.processes["cm-api"].log_path) as log:
            [line] = [line for line in log if line.rstrip().endswith("dead-lettered an event")]
        self.assertIn(f"trace_id={batch[0].trace_id}", line)
        self.assertIn(f"span_id={batch[0].span_id}", line)

        collection.database.command("collMod", collection.name, validator={})
        code, out, err = self.shop.dlq("redrive", "--key", "r-7", env=self.receiver.environment())
        self.assertEqual(code, 0, err)
        self.assertIn("1 redriven", out)

        def redriven(spans):
            sends = [s for s in self.one(spans, service="cm-api-dlq", kind="producer", name=f"send {TOPIC}")
                     if any(link["span_id"] == producer.span_id and link["trace_id"] == trace for link in s.links)]
            if not sends:
                return None
            batches = [s for s in self.one(spans, service="cm-api", kind="consumer")
                       if any(link["span_id"] == sends[0].span_id for link in s.links)]
            return batches and (sends[0], batches[0])

        send, stored_batch = self.spans(redriven, "the redrive linked to the purchase, the batch to the redrive")
        self.assertEqual(send.parent, "", "a redrive is a trace of its own")
        self.assertTrue(wait_for(lambda: request(self.shop.api_url, "GET", "/purchases/" + purchase_id)[0] == 200,
                                 30, 0.2))


class HeadSampling(unittest.TestCase):
    def test_a_trace_not_kept_makes_nothing_and_a_callers_decision_is_followed(self):
        with Receiver() as receiver:
            shop = Shop(bin_dir=BIN_DIR, env=receiver.environment(
                OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0"))
            self.addCleanup(shop.stop)
            shop.start()

            def buy(userid, headers=None):
                status, answer_headers, body = request(
                    shop.server_url, "POST", "/buy", f'{{"username":"sampled","userid":"{userid}","price":"1.00"}}',
                    headers)
                self.assertEqual(status, 200, body)
                return answer_headers

            # No traceparent, a ratio of 0: not traced, no header, nothing downstream either (the
            # list read's call to cm-api, the batch that stores it).
            self.assertIsNone(buy("s-1").get("traceresponse"))
            self.assertIsNone(request(shop.server_url, "GET", "/getAllUserBuys/sampled")[1].get("traceresponse"))
            # The caller's decision: not sampled is answered as such and exported nowhere...
            unsampled = f"00-{'1' * 32}-{'2' * 16}-00"
            self.assertEqual(traceresponse(buy("s-2", {"traceparent": unsampled}))[0], "1" * 32)
            self.assertTrue(buy("s-2", {"traceparent": unsampled})["traceresponse"].endswith("-00"))
            # ...sampled is traced end to end, the batch too: one of its records' traces is kept.
            sampled_headers = buy("s-3", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
            self.assertEqual(traceresponse(sampled_headers)[0], CLIENT_TRACE)
            self.assertTrue(wait_for(lambda: request(shop.server_url, "GET", "/getAllUserBuys/sampled")[2].count(
                '"userid":"s-') == 4, 30, 0.2), "every purchase stored")

            def graph(spans):
                producer = [s for s in spans if s.kind == "producer" and s.trace_id == CLIENT_TRACE]
                batches = [s for s in spans if s.kind == "consumer" and producer
                           and any(link["span_id"] == producer[0].span_id for link in s.links)]
                return batches and spans

            spans = receiver.wait_for(graph, 30)
            self.assertTrue(spans, "the sampled purchase's trace and its batch")
            batch_traces = {s.trace_id for s in spans if s.kind == "consumer"}
            self.assertEqual({s.trace_id for s in spans} - batch_traces, {CLIENT_TRACE},
                             [(s.service, s.kind, s.name, s.trace_id) for s in spans])
            self.assertEqual([s for s in spans if s.parent == "" and s.kind == "client"], [])


class TracingConfiguration(unittest.TestCase):
    def test_a_bad_tracing_variable_stops_the_service_with_its_name(self):
        for variable, value, says in [
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL must be one of"),
                ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER must be one of"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5", "OTEL_TRACES_SAMPLER_ARG must be a ratio"),
                ("OTEL_RESOURCE_ATTRIBUTES", "team=shop,oops", "OTEL_RESOURCE_ATTRIBUTES must be key=value pairs")]:
            env = dict(os.environ, KAFKA_BROKERS="127.0.0.1:1", MONGODB_URI="mongodb://127.0.0.1:1",
                       OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1")
            env.update({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", variable: value})
            for service in ("cm-server", "cm-api"):
                done = subprocess.run([os.path.join(BIN_DIR, service)], env=env, capture_output=True, text=True,
                                      timeout=30)
                self.assertEqual(done.returncode, 78, (service, variable, done.stderr))
                self.assertIn(says, done.stderr)

    def test_with_the_exporter_off_nothing_is_sent_and_no_header_answered(self):
        with Receiver() as receiver:
            shop = Shop(bin_dir=BIN_DIR, env=receiver.environment(OTEL_TRACES_EXPORTER="none"))
            self.addCleanup(shop.stop)
            shop.start()
            status, headers, body = request(shop.server_url, "POST", "/buy",
                                            '{"username":"quiet","userid":"q-1","price":"1.00"}',
                                            {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
            self.assertEqual(status, 200, body)
            self.assertIsNone(headers.get("traceresponse"))
            self.assertTrue(wait_for(lambda: request(shop.server_url, "GET", "/getAllUserBuys/quiet")[2].count(
                "q-1") == 1, 30, 0.2))
            # Had anything been exported, it would have arrived within the 100 ms schedule by now.
            self.assertEqual((receiver.requests, receiver.received()), (0, []))


if __name__ == "__main__":
    unittest.main()
