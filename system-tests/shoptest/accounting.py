"""Load that remembers every answer, and the exact accounting against what cm-api stored.

`Load` sends purchases to cm-server's POST /buy at a steady rate from a pool of threads (each
request on its own schedule, so a slow answer does not lower the load). Every request carries an
Idempotency-Key; a 503 or a failed connection is retried with the same key after Retry-After
(1 s, up to 3 times), as the contract tells clients to. It records every answer: the purchaseId of every 200, and for
every 503 the purchaseId and whether cm-server said it was possibly persisted.

`account` then reads every purchase of the load's users back from cm-api (GET /buyList, all
pages) and compares:

    acknowledged   purchaseIds answered 200
    stored         purchaseIds cm-api lists for the load's users
    missing        acknowledged but not stored                      (must be 0)
    duplicated     listed more than once                            (must be 0)
    stored_never_acknowledged   stored without a 200, split by what the client was told:
                   possibly_persisted (a 503 that said so), said_not_persisted (a 503 that said it
                   was not stored: must be 0), and unexplained (no answer ever named it: at most
                   the number of requests whose connection failed mid-request)
"""

import heapq
import http.client
import json
import random
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor


class Connections(threading.local):
    """One keep-alive connection per thread and host."""

    def request(self, url, method, path, body=None, headers=None, timeout=30):
        """(status, headers, body). A GET on a kept-alive connection the server has closed
        meanwhile (its idle timeout) is sent again once on a new one; a POST is not: the load
        retries it itself, with its Idempotency-Key, and counts the failure."""
        pool = self.__dict__.setdefault("pool", {})
        key = (url.netloc, timeout)
        for attempt in range(2):
            reused = key in pool
            if not reused:
                pool[key] = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
            connection = pool[key]
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                del pool[key]
                if not (reused and method == "GET" and attempt == 0):
                    raise
            except BaseException:
                connection.close()
                del pool[key]
                raise


CONNECTIONS = Connections()


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Load:
    """POST /buy at `rate` per second for the users `<run>-u0..u<users-1>` until stopped."""

    def __init__(self, server_url, run, rate, users=20, senders=64, retries=3, request_timeout=30):
        self.server = urllib.parse.urlsplit(server_url)
        # The URL's path, if any, is a prefix: an ingress's /scalable-shop-cm-server/buy.
        self.path = self.server.path.rstrip("/") + "/buy"
        self.run = run
        self.usernames = [f"{run}-u{i}" for i in range(users)]
        self.rate, self.senders, self.retries, self.timeout = rate, senders, retries, request_timeout
        self.lock = threading.Lock()
        self.acknowledged = {}            # purchaseId -> username
        self.possibly_persisted = set()   # purchaseIds of 503s that said possiblyPersisted=true
        self.not_persisted = set()        # purchaseIds of 503s that said possiblyPersisted=false
        self.answers = []                 # (sent at, seconds, status) of every attempt
        self.connection_failures = 0      # attempts that got no answer at all
        self.given_up = 0                 # purchases still unacknowledged after every retry
        self.other = []                   # (status, body) of any other answer
        self._retries = []                # heap of (due, username, body, headers, attempt)
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._dispatch, name=f"load-{self.run}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _dispatch(self):
        """Submits new purchases on schedule and retries when they are due: a retry waits in
        a queue, not in a sender thread, so an outage does not lower the offered load."""
        pool = ThreadPoolExecutor(max_workers=self.senders)
        start = time.monotonic()
        index = 0
        while not self._stop.is_set():
            now = time.monotonic()
            with self.lock:
                due = []
                while self._retries and self._retries[0][0] <= now:
                    due.append(heapq.heappop(self._retries)[1:])
            for purchase in due:
                pool.submit(self._attempt, *purchase)
            if start + index / self.rate <= now:
                pool.submit(self._attempt, *self._new_purchase(index), 0)
                index += 1
                continue
            with self.lock:
                next_retry = self._retries[0][0] if self._retries else float("inf")
            self._stop.wait(max(0, min(start + index / self.rate, next_retry) - time.monotonic()))
        pool.shutdown(wait=True)
        with self.lock:
            self.given_up += len(self._retries)  # due after the load stopped: never retried

    def _new_purchase(self, index):
        user = index % len(self.usernames)
        body = json.dumps({
            "username": self.usernames[user], "userid": f"{self.run}-id{user}",
            "price": "%d.%02d" % (random.randrange(1, 2000), random.randrange(100)),
        })
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{self.run}-{index}-{uuid.uuid4().hex[:8]}"}
        return self.usernames[user], body, headers

    def _attempt(self, username, body, headers, attempt):
        """One try; a 503 or a failed connection is queued again after 1 s (Retry-After)."""
        sent = time.monotonic()
        try:
            status, _, answer = CONNECTIONS.request(self.server, "POST", self.path, body, headers, self.timeout)
        except (OSError, http.client.HTTPException):
            status, answer = 0, b""
        with self.lock:
            self.answers.append((sent, time.monotonic() - sent, status))
            if status == 200:
                self.acknowledged[json.loads(answer)["purchaseId"]] = username
                return
            if status == 0:
                self.connection_failures += 1
            elif status == 503:
                document = json.loads(answer)
                target = self.possibly_persisted if document["possiblyPersisted"] else self.not_persisted
                target.add(document["purchaseId"])
            else:
                self.other.append((status, answer[:200]))
                return
            if attempt < self.retries:
                heapq.heappush(self._retries, (time.monotonic() + 1, username, body, headers, attempt + 1))
            else:
                self.given_up += 1

    # -- summaries -----------------------------------------------------------------------------

    def statuses(self, since=None, until=None):
        """{status: count} of the attempts sent in [since, until) (monotonic seconds)."""
        counts = {}
        for sent, _, status in self.answers:
            if (since is None or sent >= since) and (until is None or sent < until):
                counts[status] = counts.get(status, 0) + 1
        return counts

    def latencies(self, status, since=None, until=None):
        return [seconds for sent, seconds, s in self.answers
                if s == status and (since is None or sent >= since) and (until is None or sent < until)]


def stored_purchases(api_url, usernames, limit=1000):
    """Every purchaseId cm-api lists for these users, in listing order, over all pages."""
    api = urllib.parse.urlsplit(api_url)
    found = []
    for username in usernames:
        cursor = None
        while True:
            path = f"/buyList/{urllib.parse.quote(username, safe='')}?limit={limit}"
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor, safe="")
            status, _, body = CONNECTIONS.request(api, "GET", path, timeout=60)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
            page = json.loads(body)
            found += [(item["purchaseId"], item["username"]) for item in page["purchases"]]
            cursor = page.get("nextCursor")
            if not cursor:
                break
    return found


class Accounting:
    """`dead_lettered`: purchaseIds on the dead-letter topic with their reason. An acknowledged
    purchase is accounted for when it is stored or there; `dead_lettered_acknowledged` counts the
    second kind, which the scenarios that do not expect any report as a problem."""

    def __init__(self, load, listed, dead_lettered=frozenset()):
        ids = [purchase_id for purchase_id, _ in listed]
        stored = set(ids)
        acknowledged = set(load.acknowledged)
        self.acknowledged = len(acknowledged)
        self.stored = len(stored)
        self.dead_lettered = len((acknowledged & set(dead_lettered)) - stored)
        self.missing = sorted(acknowledged - stored - set(dead_lettered))
        self.duplicated = len(ids) - len(stored)
        self.wrong_user = sum(1 for pid, user in listed if pid in load.acknowledged and load.acknowledged[pid] != user)
        never = stored - acknowledged
        self.stored_never_acknowledged = len(never)
        self.possibly_persisted = len(never & load.possibly_persisted)
        self.said_not_persisted = len(never & load.not_persisted)
        self.unexplained = len(never) - self.possibly_persisted - self.said_not_persisted
        self.connection_failures = load.connection_failures

    @property
    def line(self):
        return (f"acknowledged={self.acknowledged} stored={self.stored} dead_lettered={self.dead_lettered} "
                f"missing={len(self.missing)} duplicated={self.duplicated} stored_never_acknowledged={self.stored_never_acknowledged} "
                f"(possibly_persisted={self.possibly_persisted} said_not_persisted={self.said_not_persisted} "
                f"unexplained={self.unexplained}, connection_failures={self.connection_failures})")

    @property
    def problems(self):
        """What breaks the promise; empty when every acknowledged purchase is stored exactly once."""
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} acknowledged purchases not stored, e.g. {self.missing[:3]}")
        if self.duplicated:
            found.append(f"{self.duplicated} purchases listed twice")
        if self.wrong_user:
            found.append(f"{self.wrong_user} purchases listed under another user")
        if self.said_not_persisted:
            found.append(f"{self.said_not_persisted} purchases stored after a 503 said they were not")
        if self.unexplained > self.connection_failures:
            found.append(f"{self.unexplained} stored purchases nobody was told about, more than the "
                         f"{self.connection_failures} requests that got no answer")
        return found


def account(load, api_url, settle=120, caught_up=None, dead_lettered=lambda: frozenset()):
    """Waits until cm-api has caught up, then returns the Accounting; gives up after `settle`
    seconds and returns what it has, which then shows what is missing.

    `caught_up` (a callable) says when the consumer has nothing left to read; one listing then
    suffices. Without it, the listing is repeated until every acknowledged purchase is there and
    the count held still between two reads. `dead_lettered` (a callable) gives the purchaseIds on
    the dead-letter topic."""
    deadline = time.monotonic() + settle
    if caught_up is not None:
        while not caught_up() and time.monotonic() < deadline:
            time.sleep(1)
    previous = None
    while True:
        try:
            accounting = Accounting(load, stored_purchases(api_url, load.usernames), dead_lettered())
        except (RuntimeError, OSError, http.client.HTTPException) as error:
            if time.monotonic() > deadline:
                raise
            print(f"  accounting: cm-api not answering yet ({error}); retrying")
            time.sleep(2)
            continue
        if not accounting.missing and (caught_up is not None or (previous and previous.stored == accounting.stored)):
            return accounting
        if time.monotonic() > deadline:
            return accounting
        previous = accounting
        time.sleep(2)
