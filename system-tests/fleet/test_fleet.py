"""The fleet through its front door (make test runs this; make fleet is the same fleet by hand).

Two cm-server and two cm-api replicas behind Debian's nginx configured from the cm-server
chart's rendered HTTPRoute as NGINX Gateway Fabric serves it (shoptest/fleet.py), with
AUTH_MODE=jwt as the charts default: the original public URLs, the page and its assets under the
prefix, the bare-prefix redirect, the routes the front door must not publish, usernames that nginx
decodes before its rewrite, and both replicas serving, as the fleet's own Prometheus sees it. With
FLEET_FULL=1 (make test-fleet-full), then the same routes through the chart's Ingress as
ingress-nginx served it, on a smaller fleet.
"""

import http.client
import json
import os
import unittest
import urllib.parse
import urllib.request

from shoptest import ROOT
from shoptest.fleet import Fleet
from shoptest.waiting import wait_for

PREFIX = "/scalable-shop-cm-server"


class FrontDoor:
    """What both front doors must do; a subclass starts its fleet in setUpClass."""
    front_door = None
    replicas = (2, 2)
    names_cut_by_the_rewrite = set()

    @classmethod
    def setUpClass(cls):
        servers, apis = cls.replicas
        cls.fleet = Fleet(servers=servers, apis=apis, front_door=cls.front_door,
                          bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"))
        try:
            cls.fleet.start()
        except Exception:
            cls.fleet.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fleet.stop()

    def through(self, method, path, token=None, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.fleet.ingress_port, timeout=30)
        try:
            all_headers = {"Host": "localhost"}
            if token:
                all_headers["Authorization"] = "Bearer " + token
            if body is not None:
                all_headers["Content-Type"] = "application/json"
                body = json.dumps(body).encode()
            all_headers.update(headers or {})
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def test_the_original_urls_buy_and_list(self):
        token = self.fleet.token("005", "joe")
        status, _, body = self.through("POST", PREFIX + "/buy", token,
                                          {"username": "joe", "userid": "005", "price": "1195.30"})
        self.assertEqual(status, 200, body)
        purchase = json.loads(body)["purchaseId"]

        def listed():
            status, _, body = self.through("GET", PREFIX + "/getAllUserBuys/joe", token)
            return status == 200 and purchase in body.decode()

        self.assertTrue(wait_for(listed, 30), "the purchase was not listed through the ingress")
        status, headers, _ = self.through("POST", PREFIX + "/buy", None, {"username": "joe", "userid": "005",
                                                                             "price": "1.00"})
        self.assertEqual(status, 401)
        self.assertTrue(headers["www-authenticate"].startswith("Bearer"))

    def test_the_page_its_assets_and_the_bare_prefix(self):
        status, headers, body = self.through("GET", PREFIX + "/", headers={"Accept": "text/html"})
        self.assertEqual(status, 200)
        self.assertIn(b"<title>Scalable Shop</title>", body)
        for asset, kind in (("shop.js", "text/javascript"), ("shop.css", "text/css")):
            status, headers, _ = self.through("GET", f"{PREFIX}/{asset}")
            self.assertEqual((status, headers["content-type"].split(";")[0]), (200, kind), asset)
        status, headers, _ = self.through("GET", PREFIX)
        self.assertEqual(status, 301)
        self.assertEqual(headers["location"], self.bare_prefix_location())

    def test_only_the_public_routes_are_published(self):
        for path in ("healthz", "readyz", "metrics", "openapi.yaml", "buy/../metrics", "nope"):
            status, _, body = self.through("GET", f"{PREFIX}/{path}")
            self.assertEqual(status, 404, f"{path}: {body[:200]!r}")
            self.assertNotIn(b"kafka_", body)
        self.assertEqual(self.through("GET", "/metrics")[0], 404)

    def test_usernames_nginx_decodes_before_its_rewrite(self):
        # nginx decodes the path before the regex capture: a%2Fb reaches cm-server as
        # /getAllUserBuys/a/b, which it lists as the user "a/b".
        names = [n for n in ["a/b", "100%", "joe smith", "élève", "a?b", "x#y", "+plus"]
                 if n not in self.names_cut_by_the_rewrite]
        bought = {}
        for number, name in enumerate(names):
            token = self.fleet.token(f"u-{number}", name)
            status, _, body = self.through("POST", PREFIX + "/buy", token,
                                              {"username": name, "userid": f"u-{number}", "price": "2.00"})
            self.assertEqual(status, 200, f"{name}: {body}")
            bought[name] = (token, json.loads(body)["purchaseId"])
        for name, (token, purchase) in bought.items():
            path = f"{PREFIX}/getAllUserBuys/{urllib.parse.quote(name, safe='')}"

            def listed():
                status, _, body = self.through("GET", path, token)
                if status != 200:
                    return False
                answer = json.loads(body)
                return answer["username"] == name and [p["purchaseId"] for p in answer["purchases"]] == [purchase]

            self.assertTrue(wait_for(listed, 30), f"{name!r} ({path}): {self.through('GET', path, token)}")



class ThroughTheGateway(FrontDoor, unittest.TestCase):
    """The HTTPRoute as NGINX Gateway Fabric serves it (the runbook's front door), and the
    fleet's replicas and Prometheus behind it."""
    front_door = "httproute"
    # NGINX Gateway Fabric's ReplacePrefixMatch captures the decoded path up to the first "?"
    # (`^prefix([^?]*)?`, servers.go at v2.6.7): a%3Fb reaches cm-server as /getAllUserBuys/a.
    # docs/SERVICES.md says so; test_a_question_mark_in_a_name_is_cut_by_the_gateway holds it.
    names_cut_by_the_rewrite = {"a?b"}

    def test_a_question_mark_in_a_name_is_cut_by_the_gateway(self):
        token = self.fleet.token("u-q", "a?b")
        status, _, body = self.through("GET", f"{PREFIX}/getAllUserBuys/a%3Fb", token)
        self.assertEqual((status, json.loads(body)["username"]), (200, "a"))

    def bare_prefix_location(self):
        # NGINX Gateway Fabric's redirect names the listener's port.
        return f"http://localhost:{self.fleet.ingress_port}/scalable-shop-cm-server/"

    def test_every_replica_serves_and_prometheus_scrapes_them_all(self):
        token = self.fleet.token("006", "ann")
        for _ in range(40):
            status, _, body = self.through("POST", PREFIX + "/buy?dryRun=true", token,
                                              {"username": "ann", "userid": "006", "price": "1.00"})
            self.assertEqual(status, 200, body)
        query = 'sum by (pod) (http_requests_total{namespace="scalable-shop",route="/buy"})'
        url = self.fleet.prometheus_url + "/api/v1/query?" + urllib.parse.urlencode({"query": query})

        def pods():
            with urllib.request.urlopen(url, timeout=10) as response:
                result = json.load(response)["data"]["result"]
            return {series["metric"]["pod"] for series in result if float(series["value"][1]) > 0}

        self.assertTrue(wait_for(lambda: pods() == set(self.fleet.replicas("cm-server")), 30),
                        f"pods serving /buy: {pods()}, replicas {self.fleet.replicas('cm-server')}")

        def targets_up():
            with urllib.request.urlopen(self.fleet.prometheus_url + "/api/v1/targets", timeout=10) as response:
                targets = json.load(response)["data"]["activeTargets"]
            return len(targets) == 4 and all(target["health"] == "up" for target in targets)

        # Each target is "unknown" until its first scrape.
        self.assertTrue(wait_for(targets_up, 30), "every replica scraped")

    def test_a_replica_started_or_stopped_later_is_found_and_dropped_by_prometheus(self):
        def scraped():
            with urllib.request.urlopen(self.fleet.prometheus_url + "/api/v1/targets", timeout=10) as response:
                targets = json.load(response)["data"]["activeTargets"]
            return {target["labels"]["pod"] for target in targets if target["health"] == "up"}

        name = self.fleet.add_replica("cm-api")
        self.assertTrue(wait_for(lambda: name in scraped(), 30), f"{name} not scraped: {scraped()}")
        self.assertEqual(self.fleet.terminate_replica(name), 0)
        self.assertTrue(wait_for(lambda: name not in scraped(), 30), f"{name} still a target: {scraped()}")


@unittest.skipUnless(os.environ.get("FLEET_FULL"), "make test-fleet-full only (the Gateway is the front door)")
class ThroughTheIngress(FrontDoor, unittest.TestCase):
    """The Ingress, for clusters with a maintained Ingress controller: the same routes (make
    test-fleet-full; make test keeps the chart's Ingress to the chart tests)."""
    front_door = "ingress"
    replicas = (1, 1)

    def bare_prefix_location(self):
        return "http://localhost/scalable-shop-cm-server/"


if __name__ == "__main__":
    unittest.main()
