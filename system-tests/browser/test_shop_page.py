"""The shop page in headless Chromium against the whole shop (make test-browser).

Starts kafka-mock, SecantusDB, cm-api and cm-server with the launcher, shoptest/launcher.py (debug
binaries, free ports, a throwaway data folder), puts a path-prefix proxy in front of cm-server like
ingress-nginx's /scalable-shop-cm-server/, and drives the page with Selenium:
three purchases listed newest first and marked stored, a 422 shown next to its field, an XSS
username shown as text, the page working under the prefix; screenshots at desktop and phone
width go to .build/screenshots/. Then a second shop with AUTH_MODE=jwt: the page asks for a
token on 401, says who is signed in, buys and lists with it, shows 403 and 429 as messages, and
keeps the token in the tab's sessionStorage only.
"""

import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import jwt
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from shoptest import ROOT
from shoptest.launcher import Shop
PREFIX = "/scalable-shop-cm-server"
SCREENSHOTS = os.path.join(ROOT, ".build", "screenshots")


def prefix_proxy(target_port):
    """Forwards /scalable-shop-cm-server/<path> to cm-server's /<path>, as the ingress does.
    `server.answers` records (path, If-None-Match sent, status) of every list request."""
    answers = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def forward(self):
            if not self.path.startswith(PREFIX + "/"):
                self.send_error(404)
                return
            # Test-only faults for the page's error handling: a failing and a slow backend.
            if self.path.startswith(PREFIX + "/getAllUserBuys/broken-backend"):
                self.send_json(502, b'{"status":"Error","message":"The purchase list is unavailable","errors":[]}')
                return
            if self.path.startswith(PREFIX + "/getAllUserBuys/slow-backend"):
                time.sleep(15)
                self.send_json(200, b'{"username":"slow-backend","purchases":[]}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            request = urllib.request.Request(
                "http://127.0.0.1:%d%s" % (target_port, self.path[len(PREFIX):]), data=body, method=self.command)
            for name in ("Content-Type", "Accept", "Idempotency-Key", "Authorization", "If-None-Match"):
                if self.headers.get(name):
                    request.add_header(name, self.headers[name])
            try:
                response = urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as error:
                response = error
            payload = response.read()
            if self.path.startswith(PREFIX + "/getAllUserBuys/"):
                answers.append((self.path[len(PREFIX):], self.headers.get("If-None-Match"), response.status))
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def send_json(self, status, payload):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except BrokenPipeError:
                pass

        do_GET = forward
        do_POST = forward

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.answers = answers
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def fill(driver, **values):
    for name, value in values.items():
        field = driver.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)


def message(driver):
    return driver.find_element(By.ID, "message").text


def buy(driver, wait, **values):
    fill(driver, **values)
    driver.find_element(By.ID, "buy").click()
    wait.until(lambda d: message(d).startswith("Stored:") or "failed" in d.find_element(By.ID, "message").get_attribute("class"))
    assert message(driver).startswith("Stored:"), message(driver)


def open_mode():
    data = tempfile.mkdtemp(prefix="shop-browser-")
    shop = Shop(data=data, test_commands=True)
    proxy = None
    try:
        shop.start()
    except RuntimeError:
        shop.stop()
        raise
    port = shop.ports["server"]
    proxy = prefix_proxy(port)
    driver = None
    try:
        driver = browser()
        wait = WebDriverWait(driver, 30)
        base = "http://127.0.0.1:%d%s/" % (proxy.server_address[1], PREFIX)
        driver.get(base)
        assert driver.title == "Scalable Shop", driver.title
        assert driver.find_element(By.ID, "timestamp").get_attribute("value").endswith("Z")

        # Three purchases under the ingress prefix: each followed from "sent" to "stored".
        for second, price in ((1, "1.10"), (3, "3.30"), (2, "2.20")):
            buy(driver, wait, username="alice", userid="a1", price=price,
                timestamp="2024-01-01T00:00:0%d.000Z" % second)
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")) == 3)
        rows = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                for row in driver.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")]
        assert [row[1] for row in rows] == ["3.30", "2.20", "1.10"], rows  # newest first
        assert all(row[4] == "stored" for row in rows), rows
        os.makedirs(SCREENSHOTS, exist_ok=True)
        driver.save_screenshot(os.path.join(SCREENSHOTS, "shop-desktop.png"))

        # While cm-api cannot store (MongoDB fails its inserts), the page follows the purchase
        # with conditional polls: each sends back the page's tag and is answered 304, no body;
        # the first one after the write lands is a 200, and the row turns "stored".
        admin = shop.mongo().admin
        admin.command("configureFailPoint", "failCommand", mode="alwaysOn",
                      data={"failCommands": ["insert"], "errorCode": 89, "appName": "cm-api"})
        try:
            fill(driver, username="poller", userid="p0", price="7.70", timestamp="2024-01-01T00:00:07.000Z")
            driver.find_element(By.ID, "buy").click()
            wait.until(lambda d: sum(1 for path, tag, status in proxy.answers
                                     if path.startswith("/getAllUserBuys/poller") and tag and status == 304) >= 2)
        finally:
            admin.command("configureFailPoint", "failCommand", mode="off")
        wait.until(lambda d: message(d).startswith("Stored:") or "failed" in d.find_element(By.ID, "message").get_attribute("class"))
        assert message(driver).startswith("Stored:"), message(driver)
        polls = [(tag, status) for path, tag, status in proxy.answers if path.startswith("/getAllUserBuys/poller")]
        assert polls[0] == (None, 200) and polls[-1][1] == 200, polls
        assert all(tag == polls[1][0] for tag, _ in polls[1:]), polls  # the tag of the page before the purchase

        # A 422: the reason next to the field, nothing listed.
        fill(driver, username="alice", userid="a1", price="-1")
        driver.find_element(By.ID, "buy").click()
        wait.until(lambda d: d.find_element(By.ID, "price-error").text != "")
        assert driver.find_element(By.ID, "price").get_attribute("aria-invalid") == "true"
        assert "negative" in driver.find_element(By.ID, "price-error").text, driver.find_element(By.ID, "price-error").text

        # A purchase Kafka did not take (503) is bought again with the same Idempotency-Key when
        # Buy is pressed again: the retry is the same purchase (the same purchaseId), stored once.
        shop.kafka_down()
        try:
            fill(driver, username="carol", userid="c1", price="6.60", timestamp="2024-01-01T00:00:06.000Z")
            driver.find_element(By.ID, "buy").click()
            wait.until(lambda d: "Press Buy again to retry" in message(d))
        finally:
            shop.kafka_up()
        tried = message(driver).split("(purchase ", 1)[1].split(")", 1)[0]
        wait.until(lambda d: shop.ready("cm-server"))
        driver.find_element(By.ID, "buy").click()
        wait.until(lambda d: message(d).startswith("Stored:"))
        stored_id = message(driver).split(": ", 1)[1]
        with urllib.request.urlopen(base + "getAllUserBuys/carol", timeout=10) as response:
            listed = json.load(response)["purchases"]
        assert stored_id == tried, f"the retry is the purchase first tried: {stored_id} != {tried}"
        assert [item["purchaseId"] for item in listed] == [stored_id], listed
        # A new purchase is a new attempt: a new key, a new purchaseId.
        buy(driver, wait, username="carol", userid="c1", price="6.60", timestamp="2024-01-01T00:00:07.000Z")
        assert message(driver).split(": ", 1)[1] != stored_id

        # The keyboard alone: Enter in a field submits the form.
        fill(driver, username="alice", userid="a1", price="4.40", timestamp="2024-01-01T00:00:04.000Z")
        driver.find_element(By.ID, "price").send_keys(Keys.ENTER)
        wait.until(lambda d: message(d).startswith("Stored:"))

        # A failing backend is a clear message; a slow one never freezes the page.
        fill(driver, username="broken-backend")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: "unavailable" in message(d))
        fill(driver, username="slow-backend")
        started = time.time()
        driver.find_element(By.ID, "list").click()
        # While the list waits, the page is still usable: a purchase goes through to "Stored:".
        buy(driver, wait, username="patient", userid="p1", price="5.50", timestamp="2024-01-01T00:00:05.000Z")
        assert time.time() - started < 10, "bought while the slow list was still pending"
        wait.until(lambda d: "did not answer in time" in message(d))
        assert time.time() - started < 14, "the page gave up at its own deadline"
        assert driver.find_element(By.ID, "list").is_enabled()

        # An XSS username is text, never markup.
        xss = "<img src=x onerror=alert(1)>"
        buy(driver, wait, username=xss, userid="x1", price="0.50", timestamp="2024-01-01T00:00:09.000Z")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")) == 1)
        assert driver.find_element(By.ID, "listed-user").text == "of " + xss
        assert driver.find_elements(By.TAG_NAME, "img") == []
        assert not expected_conditions.alert_is_present()(driver)

        # "Load more" follows the cursor: 25 purchases bought through the API, 20 then 25 rows.
        for n in range(25):
            request = urllib.request.Request(
                base + "buy", method="POST", headers={"Content-Type": "application/json"},
                data=('{"username":"bob","userid":"b1","price":"%d.00","timestamp":"2024-02-01T00:00:%02d.000Z"}'
                      % (n, n)).encode())
            assert urllib.request.urlopen(request, timeout=30).status == 200
        deadline = time.time() + 30
        while time.time() < deadline:  # all 25 stored before the page lists them
            with urllib.request.urlopen(base + "getAllUserBuys/bob?limit=1000", timeout=10) as response:
                if response.read().count(b'"purchaseId"') == 25:
                    break
            time.sleep(0.3)
        fill(driver, username="bob")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: not d.find_element(By.ID, "more").get_attribute("hidden"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")) == 20
        driver.find_element(By.ID, "more").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")) == 25)
        prices = [row.find_elements(By.TAG_NAME, "td")[1].text
                  for row in driver.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")]
        assert prices == ["%d.00" % n for n in range(24, -1, -1)], prices
        assert driver.find_element(By.ID, "more").get_attribute("hidden") is not None

        # Phone width, keyboard focus on the first field.
        driver.set_window_size(390, 844)
        driver.get(base)
        driver.find_element(By.ID, "username").send_keys("alice")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")) == 4)
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        driver.save_screenshot(os.path.join(SCREENSHOTS, "shop-phone.png"))

        # Without the prefix too.
        driver.get("http://127.0.0.1:%d/" % port)
        assert driver.find_element(By.ID, "buy").is_displayed()
        print("browser test passed; screenshots in %s" % SCREENSHOTS)
    finally:
        if driver is not None:
            driver.quit()
        proxy.shutdown()
        shop.stop()
        shutil.rmtree(data, ignore_errors=True)


SECRET = "browser-test-secret-of-at-least-32-bytes"


def token_for(sub, username, **extra):
    claims = {"sub": sub, "preferred_username": username, "iss": "browser-test", "aud": "scalable-shop",
              "exp": int(time.time()) + 600}
    claims.update(extra)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def jwt_mode():
    shop = Shop(env={
        "AUTH_MODE": "jwt", "AUTH_JWT_SECRET": SECRET, "AUTH_ISSUER": "browser-test", "AUTH_AUDIENCE": "scalable-shop",
        "CM_API_SERVICE_TOKEN": "browser-test-service-token-of-32-bytes", "RATE_LIMIT_BUY_PER_SECOND": 1,
        "RATE_LIMIT_BUY_BURST": 2})
    try:
        shop.start()
    except RuntimeError:
        shop.stop()
        raise
    proxy = prefix_proxy(shop.ports["server"])
    driver = None
    try:
        driver = browser()
        wait = WebDriverWait(driver, 30)
        base = "http://127.0.0.1:%d%s/" % (proxy.server_address[1], PREFIX)
        driver.get(base)
        assert driver.find_element(By.ID, "who").text.startswith("Not signed in"), driver.find_element(By.ID, "who").text

        # Without a token: the 401 asks for one and puts the cursor in the token field.
        fill(driver, username="alice")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: message(d).startswith("Sign in first"))
        assert driver.switch_to.active_element.get_attribute("id") == "token"
        assert driver.find_element(By.ID, "token-error").text == "Paste a token to sign in"

        # Not a JWT: said next to the field, nothing stored.
        fill(driver, token="not-a-token")
        driver.find_element(By.ID, "use-token").click()
        assert "not a JWT" in driver.find_element(By.ID, "token-error").text

        # Alice's token: who is signed in, the form filled, a purchase bought and listed.
        fill(driver, token=token_for("a-001", "alice"))
        driver.find_element(By.ID, "use-token").click()
        assert driver.find_element(By.ID, "who").text.startswith("Signed in as alice (user id a-001)")
        assert driver.find_element(By.ID, "userid").get_attribute("value") == "a-001"
        assert driver.find_element(By.ID, "token").get_attribute("value") == ""
        buy(driver, wait, price="7.70", timestamp="2024-03-01T00:00:00.000Z")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#purchases tbody tr")) == 1)
        driver.save_screenshot(os.path.join(SCREENSHOTS, "shop-signed-in.png"))

        # Another user's list shows only the caller's own purchases under that name (none);
        # buying in another name is a 403, said so.
        fill(driver, username="bob")
        driver.find_element(By.ID, "list").click()
        wait.until(lambda d: message(d) == "No purchases for bob")
        fill(driver, username="alice", userid="b-002", price="1.00")
        driver.find_element(By.ID, "buy").click()
        wait.until(lambda d: message(d).startswith("Not allowed:"))
        assert "sub" in driver.find_element(By.ID, "userid-error").text, driver.find_element(By.ID, "userid-error").text

        # A flood of alice's own requests: the page's purchase meets the limit and says when to retry.
        stop = threading.Event()
        alice = token_for("a-001", "alice")

        def flood():
            while not stop.is_set():
                request = urllib.request.Request(
                    base + "buy?dryRun=true", method="POST", data=b'{"username":"alice","userid":"a-001","price":"1"}',
                    headers={"Content-Type": "application/json", "Authorization": "Bearer " + alice})
                try:
                    urllib.request.urlopen(request, timeout=10).read()
                except urllib.error.HTTPError:
                    pass
                time.sleep(0.02)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            fill(driver, userid="a-001", price="2.00")
            driver.find_element(By.ID, "buy").click()
            wait.until(lambda d: message(d).startswith("Too many requests: try again in 1 s"))
        finally:
            stop.set()
            flooder.join()

        # The token lives in this tab's sessionStorage only: a reload keeps it, sign-out drops it.
        assert driver.execute_script("return window.localStorage.length") == 0
        driver.get(base)
        assert driver.find_element(By.ID, "who").text.startswith("Signed in as alice")
        driver.find_element(By.ID, "sign-out").click()
        assert driver.find_element(By.ID, "who").text.startswith("Not signed in")
        assert driver.execute_script("return window.sessionStorage.length") == 0
        print("browser test (AUTH_MODE=jwt) passed")
    finally:
        if driver is not None:
            driver.quit()
        proxy.shutdown()
        shop.stop()


class ShopPageTests(unittest.TestCase):
    def test_the_page_buys_lists_and_explains_refusals(self):
        open_mode()

    def test_the_page_signs_in_with_a_token_and_keeps_it_in_the_tab(self):
        jwt_mode()
