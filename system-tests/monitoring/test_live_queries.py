"""Every alert and dashboard query the charts ship, evaluated by a real Prometheus (Debian's
package) scraping the running local shop through a short run with faults (run by make test).

The shop (shoptest/launcher.py, debug binaries) takes purchases and list requests; then poison events
are written to the purchases topic, MongoDB refuses cm-api's writes for good (a failpoint), is
killed and started again, and Kafka is taken down, each until Prometheus shows the alerts about it pending or
firing. Then every rule's expression without its threshold, and every panel query, must return
data: a wrong metric or label name would make a query silently empty, and an alert that can
never fire. The rules are the charts' own, rendered with their defaults.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.parse
import urllib.request

import yaml

from shoptest import ROOT, TOPIC
from shoptest.charts import NAMESPACE, dashboard, of_kind, render, rule_groups
from shoptest.launcher import Shop
from shoptest.net import free_port, http_get
from shoptest.waiting import wait_for

CHARTS = ("cm-api", "cm-server")


def threshold_free(expression):
    """The expression left of its last top-level comparison (`a / b > 0.05` -> `a / b`): what must
    return data whether or not the alert fires."""
    depth, quoted, cut = 0, False, None
    for index, char in enumerate(expression):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and char in "<>=!" and expression[index:index + 2] not in ("=~", "!~"):
            if expression[index - 1] not in "<>=!":
                cut = index
    return expression[:cut].strip() if cut is not None else expression


class Prometheus:
    def __init__(self, shop, folder):
        self.port = free_port()
        self.jobs = (("cm-api", shop.api_url), ("cm-server", shop.server_url))
        self.url = f"http://127.0.0.1:{self.port}"
        rule_files = []
        for chart in CHARTS:
            path = os.path.join(folder, f"{chart}.rules.yaml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": rule_groups(chart)}, f)
            rule_files.append(path)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rule_files,
            # The labels the charts' default scraping gives (pod annotations, Prometheus'
            # kubernetes-pods job): namespace and pod; only a ServiceMonitor adds "service".
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": [urllib.parse.urlsplit(url).netloc],
                                                       "labels": {"namespace": NAMESPACE, "pod": f"{name}-0"}}]}
                for name, url in self.jobs
            ],
        }
        config_path = os.path.join(folder, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        self.log = open(os.path.join(folder, "prometheus.log"), "w")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config_path}", f"--storage.tsdb.path={folder}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: http_get(self.url, "/-/ready")[0] == 200, 60, 0.2):
            raise RuntimeError("Prometheus did not become ready")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def api(self, path, **parameters):
        query = urllib.parse.urlencode(parameters)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as response:
            answer = json.load(response)
        if answer["status"] != "success":
            raise RuntimeError(f"{path} {parameters}: {answer}")
        return answer["data"]

    def query(self, expression):
        return self.api("query", query=expression)["result"]

    def alerts(self):
        """{alertname: state} of the alerts pending or firing now."""
        return {alert["labels"]["alertname"]: alert["state"] for alert in self.api("alerts")["alerts"]}

    def diagnosis(self):
        """What a failure message needs: each target's last scrape, and the dead-letter counter."""
        lines = [f"{t['labels']['job']}: {t['health']} {t.get('lastError')!r} last scrape "
                 f"{t.get('lastScrapeDuration', 0):.3f} s at {t.get('lastScrape')}"
                 for t in self.api("targets")["activeTargets"]]
        lines.append(f"dead letters: {self.query('cmapi_events_dead_lettered_total')}")
        return "\n".join(lines)

    def targets_up(self):
        """Both services scraped, and successfully the last time. Right after /-/ready Prometheus may
        not have its targets yet (an empty list, which all() would call up)."""
        targets = self.api("targets")["activeTargets"]
        return ({t["labels"]["job"] for t in targets} == {name for name, _ in self.jobs}
                and all(t["health"] == "up" for t in targets))


class Traffic(threading.Thread):
    """Purchases and list requests, a few per second, until stopped."""

    def __init__(self, shop):
        super().__init__(daemon=True)
        self.shop, self.stopping = shop, threading.Event()

    def run(self):
        import http.client

        number = 0
        while not self.stopping.wait(0.1):
            number += 1
            for url, method, path, body in (
                (self.shop.server_url, "POST", "/buy",
                 json.dumps({"username": f"watcher {number % 3}", "userid": f"w{number % 3}", "price": "2.50"})),
                (self.shop.server_url, "GET", f"/getAllUserBuys/watcher%20{number % 3}?limit=5", None),
                (self.shop.api_url, "GET", f"/buyList/watcher%20{number % 3}?limit=5", None),
                (self.shop.api_url, "GET", "/purchases/00000000-0000-4000-8000-000000000000", None),
            ):
                parts = urllib.parse.urlsplit(url)
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                try:
                    connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                    connection.getresponse().read()
                except OSError:
                    pass
                finally:
                    connection.close()

    def stop(self):
        self.stopping.set()
        self.join()


class LiveQueries(unittest.TestCase):
    def test_every_rule_and_panel_query_finds_the_services_metrics_through_faults(self):
        folder = tempfile.mkdtemp(prefix="monitoring.")
        self.addCleanup(shutil.rmtree, folder, True)
        shop = Shop(bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"),
                    test_commands=True)
        self.addCleanup(shop.stop)
        shop.start()
        prometheus = Prometheus(shop, folder)
        self.addCleanup(prometheus.stop)
        traffic = Traffic(shop)
        traffic.start()
        self.addCleanup(traffic.stop)
        self.assertTrue(wait_for(prometheus.targets_up, 30, 0.5), prometheus.api("targets"))
        self.assertTrue(wait_for(lambda: prometheus.query('sum(http_requests_total{route="/buy"})'), 30, 0.5))

        # Two minutes: CI once saw no alert within one while every suite shared its 2 cores (the
        # same run passes in under one here); an alert that never shows still fails.
        def expect_alerts(names, during, timeout=120):
            seen = {}

            def showing():
                seen.update(prometheus.alerts())
                return all(name in seen for name in names)

            self.assertTrue(wait_for(showing, timeout, 0.5),
                            f"during {during}: {sorted(names)} not all in {seen}\n{prometheus.diagnosis()}\n{shop.logs(20)}")

        # Poison events, as a buggy producer would write them: dead letters, written once the
        # counter's 0 is in Prometheus, so that the alert shows them arriving. (CI once produced
        # the poison between cm-server's first scrape and cm-api's; the alert was then a bare
        # increase(), which a series first seen at 3 never shows. It now counts a young series
        # whole, which this run, with a Prometheus younger than the alert's window, always takes;
        # the promtool cases in system-tests/k8s/alerts hold both branches.)
        self.assertTrue(wait_for(lambda: prometheus.query('cmapi_events_dead_lettered_total{cause="invalid_event"} == 0'),
                                 30, 0.5), prometheus.diagnosis())
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": shop.bootstrap})
        for number in range(3):
            producer.produce(TOPIC, key=b"poison", value=b"not a purchase %d" % number)
        self.assertEqual(producer.flush(30), 0)
        del producer  # its connection would complain through the Kafka outage below
        expect_alerts({"CmApiDeadLetters"}, "poison events")

        # MongoDB refuses cm-api's writes for good (Unauthorized), then is stopped: both classes.
        admin = shop.mongo().admin
        admin.command("configureFailPoint", "failCommand", mode="alwaysOn",
                      data={"failCommands": ["insert"], "errorCode": 13, "appName": "cm-api"})
        try:
            expect_alerts({"CmApiMongoDBRefusesWrites", "CmApiIngestNotReady"}, "MongoDB refusing writes")
        finally:
            admin.command("configureFailPoint", "failCommand", mode="off")
        shop.kill("secantusdb")
        try:
            expect_alerts({"CmApiMongoDBWritesFailing", "CmApiServerErrors", "CmServerServerErrors", "CmApiNotReady"},
                          "MongoDB down")
        finally:
            shop.start_service("secantusdb")

        # Kafka down: purchases refused, cm-server not ready.
        shop.kafka_down()
        try:
            expect_alerts({"CmServerRefusingPurchases", "CmServerProduceFailures", "CmServerNotReady"},
                          "Kafka down")
        finally:
            shop.kafka_up()
        # Every service scraped again before the queries: right after Kafka returns, a scrape of
        # cm-api's /metrics was seen to outlast the 1 s scrape timeout (2 runs in 4 here, once in
        # CI; it asks the consumer for its assignment and lag while it reconnects), and a failed
        # scrape empties every cm-api series. A cm-api that never answers again still fails here.
        self.assertTrue(wait_for(prometheus.targets_up, 60, 0.5), prometheus.diagnosis())

        empty = []
        for chart in CHARTS:
            for group in rule_groups(chart):
                for rule in group["rules"]:
                    expression = threshold_free(rule["expr"])
                    if not prometheus.query(expression):
                        empty.append(f"{chart} {rule['alert']}: {expression}")
            _, board = dashboard(chart)
            for panel in board["panels"]:
                for target in panel["targets"]:
                    if not prometheus.query(target["expr"]):
                        empty.append(f"{chart} panel {panel['title']!r}: {target['expr']}")
        # KEDA's query for cm-server (ignoreNullValues false: an empty answer would be an error and
        # the fallback, never a scale to the minimum).
        scaled = of_kind(render("cm-server", {"autoscaling": {"enabled": True, "type": "keda"}}), "ScaledObject")[0]
        keda_query = scaled["spec"]["triggers"][0]["metadata"]["query"]
        if not prometheus.query(keda_query):
            empty.append(f"cm-server ScaledObject: {keda_query}")
        self.assertEqual(empty, [], "queries that found nothing")


class ThresholdFreeTests(unittest.TestCase):
    def test_the_threshold_is_cut_at_the_last_top_level_comparison_only(self):
        self.assertEqual(threshold_free('sum(rate(a{b=~"x|y"}[5m])) / sum(rate(a[5m])) > 0.05'),
                         'sum(rate(a{b=~"x|y"}[5m])) / sum(rate(a[5m]))')
        self.assertEqual(threshold_free('service_ready{shop_service="cm-api"} == 0'),
                         'service_ready{shop_service="cm-api"}')
        self.assertEqual(threshold_free('max(x{a!="b"}) >= 3'), 'max(x{a!="b"})')
        self.assertEqual(threshold_free("sum(x)"), "sum(x)")


if __name__ == "__main__":
    unittest.main()
