"""The shop page in headless Chromium against the whole shop (make test runs this).

Starts kafka-mock, SecantusDB, cm-api and cm-server with the launcher, scripts/shop.py (debug
binaries, free ports, a throwaway data folder), puts a path-prefix proxy in front of cm-server like
ingress-nginx's /scalable-shop-cm-server/, and drives the page with Selenium:
three purchases listed newest first and marked stored, a 422 shown next to its field, an XSS
username shown as text, the page working under the prefix; screenshots at desktop and phone
width go to .build/screenshots/.
"""

import http.server
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from shop import Shop  # noqa: E402  (the launcher)
PREFIX = "/scalable-shop-cm-server"
SCREENSHOTS = os.path.join(ROOT, ".build", "screenshots")


def prefix_proxy(target_port):
    """Forwards /scalable-shop-cm-server/<path> to cm-server's /<path>, as the ingress does."""

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
            for name in ("Content-Type", "Accept", "Idempotency-Key"):
                if self.headers.get(name):
                    request.add_header(name, self.headers[name])
            try:
                response = urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as error:
                response = error
            payload = response.read()
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


def main():
    data = tempfile.mkdtemp(prefix="shop-browser-")
    shop = Shop(bin_dir=os.path.join(ROOT, ".build", "debug"), data=data)
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

        # A 422: the reason next to the field, nothing listed.
        fill(driver, username="alice", userid="a1", price="-1")
        driver.find_element(By.ID, "buy").click()
        wait.until(lambda d: d.find_element(By.ID, "price-error").text != "")
        assert driver.find_element(By.ID, "price").get_attribute("aria-invalid") == "true"
        assert "negative" in driver.find_element(By.ID, "price-error").text, driver.find_element(By.ID, "price-error").text

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


if __name__ == "__main__":
    main()
