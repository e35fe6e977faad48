"""The images (make test-images; make test runs it): built with podman from the Dockerfile on a
Debian base made with debootstrap, the Swift stage replaced by the host's build (its objects linked
again with the Swift runtime inside, as the Swift stage links them), then run as the charts run them: the image's
uid 10001, a read-only root file system, every capability dropped, no new privileges, credentials
as files in SECRETS_DIR, against the local Kafka and MongoDB stand-ins. The original README's calls
go through them; the runtime image holds every library the binaries load; two builds from the
same inputs give the same image ID.
"""

import json
import os
import subprocess
import unittest
import urllib.request

from shoptest import ROOT, images
from shoptest.launcher import Shop
from shoptest.waiting import wait_for

# The images are linked from this build's objects; the shop's other processes run from BIN_DIR.
CONFIGURATION = os.environ.get("IMAGE_CONFIGURATION") or "debug"
BIN_DIR = os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", CONFIGURATION)
SERVICE_TOKEN = "a-service-token-of-at-least-32-bytes!!"


def request(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(headers or {}, **({"Content-Type": "application/json"} if data else {}))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                    timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Images(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ids = images.build_all(CONFIGURATION)
        # The service token reaches both as a file, as the charts mount it; MONGODB_URI too.
        cls.shop = Shop(bin_dir=BIN_DIR, images={service: images.tag(service) for service in images.SERVICES},
                        env={"CM_API_SERVICE_TOKEN": SERVICE_TOKEN})
        try:
            cls.shop.start()
        except Exception:
            cls.shop.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.shop.stop()

    def exec(self, service, *command):
        return subprocess.run(["podman", "exec", self.shop.containers[service], *command], env=images.environment(),
                              capture_output=True, text=True, timeout=60)

    def test_the_readme_calls_through_the_images(self):
        status, body = request("POST", self.shop.server_url + "/buy",
                               {"username": "joe", "userid": "005", "price": "1195.30"})
        self.assertEqual(status, 200, body)
        purchase = json.loads(body)["purchaseId"]

        def listed():
            status, body = request("GET", self.shop.server_url + "/getAllUserBuys/joe")
            return status == 200 and purchase in [p["purchaseId"] for p in json.loads(body)["purchases"]]

        self.assertTrue(wait_for(listed, 30), "the purchase was not listed")
        self.assertEqual(request("GET", self.shop.server_url + "/healthz")[0], 200)
        # cm-api read its service token from the file: without it, it answers nobody.
        self.assertEqual(request("GET", self.shop.api_url + "/buyList/joe")[0], 401)
        self.assertEqual(request("GET", self.shop.api_url + "/buyList/joe",
                                 headers={"Shop-Service-Token": SERVICE_TOKEN})[0], 200)

    def test_they_run_as_the_charts_run_them(self):
        for service in images.SERVICES:
            with self.subTest(service=service):
                status = dict(line.split(":\t", 1) for line in self.exec(service, "cat", "/proc/1/status").stdout
                              .splitlines() if ":\t" in line)
                self.assertEqual(status["Uid"].split()[:2], ["10001", "10001"])
                self.assertEqual(status["Gid"].split()[:2], ["10001", "10001"])
                self.assertEqual(int(status["CapEff"], 16), 0)
                self.assertEqual(int(status["CapBnd"], 16), 0)
                self.assertEqual(status["NoNewPrivs"].strip(), "1")
                write = self.exec(service, "sh", "-c", "echo x > /probe")
                self.assertNotEqual(write.returncode, 0)
                self.assertIn("Read-only file system", write.stderr)
                # No credential in the environment: files only.
                environment = self.exec(service, "cat", "/proc/1/environ").stdout.split("\0")
                names = {entry.split("=", 1)[0] for entry in environment if entry}
                self.assertFalse(names & images.SECRET_VARIABLES, names)
                self.assertIn("SECRETS_DIR", names)

    def test_the_runtime_image_holds_every_library_the_binaries_load(self):
        for service in images.SERVICES:
            with self.subTest(service=service):
                done = subprocess.run(["podman", "run", "--rm", "--pull=never", "--entrypoint", "ldd",
                                       images.tag(service), f"/usr/local/bin/{service}"], env=images.environment(),
                                      capture_output=True, text=True, timeout=120)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertNotIn("not found", done.stdout)
                self.assertIn("librdkafka.so.1", done.stdout)
                if service == "cm-api":
                    self.assertIn("libmongoc-1.0.so.0", done.stdout)

    def test_two_builds_from_the_same_inputs_give_the_same_image(self):
        folder = images.binaries_context(CONFIGURATION, self.shop.data + "/rebuild")
        again = images.build("cm-server", folder, image="localhost/scalable-shop/cm-server:rebuild", no_cache=True)
        images.podman("rmi", "localhost/scalable-shop/cm-server:rebuild")
        self.assertEqual(again, self.ids["cm-server"])


if __name__ == "__main__":
    unittest.main()
