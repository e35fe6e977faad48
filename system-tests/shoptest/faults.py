"""The faults a production cluster sees, each applied to the running shop under continuous load.

Each scenario starts a `Load` of its own users, lets it run, applies its fault, puts things right,
lets the load run on, stops it, waits for cm-api to catch up and does the exact accounting. It
returns a `Report`: the accounting, what it measured (facts) and what broke a promise
(problems, empty when all is well). make test runs each once with short pauses; make soak
picks them at random for ten minutes.
"""

import http.client
import json
import os
import signal
import threading
import time
import urllib.parse
import uuid

from shoptest import TOPIC
from shoptest.accounting import CONNECTIONS, Load, account, percentile
from shoptest.bad_input import changed
from shoptest.kafka import DeadLetterHeader, DeadLetterReader
from shoptest.launcher import Process
from shoptest.net import free_port, http_get
from shoptest.waiting import wait_for

# cm-api's ingest readiness: /readyz says only whether it can serve reads.
INGEST = "/readyz/ingest"


class Report:
    def __init__(self, name, accounting, facts, problems):
        self.name, self.accounting, self.facts = name, accounting, facts
        self.problems = accounting.problems + problems

    @property
    def line(self):
        facts = " ".join(f"{key}={value}" for key, value in self.facts.items())
        return f"{self.name}: {self.accounting.line} {facts}".rstrip()


def _ms(seconds):
    return round(seconds * 1000)


class Pace:
    """How long the load runs before and after the fault, and how long the accounting may wait
    for cm-api to catch up. The defaults are make test's: 2 s and 3 s at 100/s put hundreds of
    purchases in flight on each side of the fault, and each fault waits for its own recovery;
    make soak holds the load for minutes around each fault."""

    def __init__(self, before=2, after=3, settle=120, rate=100):
        self.before, self.after, self.settle, self.rate = before, after, settle, rate


def run(name, shop, pace):
    """One scenario under its own load: load, fault, load, then the exact accounting, in which a
    purchase counts as accounted for when it is stored or on the dead-letter topic."""
    load = Load(shop.server_url, run_id(name), pace.rate).start()
    dead_letters = DeadLetterReader(shop.bootstrap)
    time.sleep(pace.before)
    facts, problems = FAULTS[name](shop, load)
    time.sleep(pace.after)
    load.stop()
    problems += recovered(shop)
    if load.other:
        problems.append(f"unexpected answers to POST /buy: {load.other[:3]}")
    report = Report(name, account(load, shop.api_url, pace.settle, shop.caught_up, dead_letters.purchase_ids),
                    facts, problems)
    if report.accounting.dead_lettered and name not in DEAD_LETTERING:
        report.problems.append(f"{report.accounting.dead_lettered} acknowledged purchases dead-lettered")
    if name == "cm-api-sigkill":
        # Counted by the new process: events it found already stored, i.e. read again.
        report.facts["redelivered_already_stored"] = int(shop.metric("cm-api", "cmapi_purchases_duplicate_total"))
    if name in ("poison-burst", "cm-api-stalled") and report.accounting.stored_never_acknowledged:
        # No fault touched the purchases themselves: every stored one was acknowledged.
        report.problems.append(f"{report.accounting.stored_never_acknowledged} purchases stored that nobody sent")
    return report


def recovered(shop):
    """Problems if a service is not ready again within a minute of a fault's end."""
    return [f"{service} not ready again within 60 s of the fault's end"
            for service in ("cm-server", "cm-api") if not wait_for(lambda: shop.ready(service), 60, 0.5)]


def kafka_broker_outage(shop, load, down_seconds=10):
    """Every Kafka broker down for `down_seconds`, then back: POST /buy answers 503 fast (no
    request waits out the delivery timeout), nothing acknowledged is lost, and purchases are
    acknowledged again soon after the brokers return."""
    shop.kafka_down()
    down_at = time.monotonic()
    time.sleep(down_seconds)
    shop.kafka_up()
    up_at = time.monotonic()
    accepting = wait_for(lambda: any(s == 200 and sent >= up_at for sent, _, s in list(load.answers)), 30)
    # Requests sent once librdkafka had noticed (the first second excepted: those were queued
    # before it knew, and wait for the delivery timeout or the brokers' return).
    refused = load.latencies(503, down_at + 1, up_at)
    first_ok_after = min((sent + seconds for sent, seconds, status in list(load.answers)
                          if status == 200 and sent >= up_at), default=None)
    facts = {
        "down_s": down_seconds, "refused_503": len(refused),
        "503_p50_ms": _ms(percentile(refused, 0.5)), "503_p99_ms": _ms(percentile(refused, 0.99)),
        "503_max_ms": _ms(max(refused, default=0)),
        "accepting_again_after_ms": _ms(first_ok_after - up_at) if first_ok_after else None,
    }
    problems = []
    if not refused:
        problems.append("no 503 while every broker was down")
    elif percentile(refused, 0.99) > 2.0:
        problems.append(f"503s were slow while Kafka was down: p99 {facts['503_p99_ms']} ms")
    if not accepting:
        problems.append("no purchase acknowledged within 30 s of the brokers' return")
    return facts, problems


def mongodb_killed_and_restarted(shop, load, down_seconds=5):
    """SecantusDB killed (SIGKILL) mid-ingest and started again on the same data: cm-api holds
    the batch, reports not-ready, retries, and stores everything once MongoDB is back."""
    failures_before = shop.metric_total("cm-api", "cmapi_mongo_write_failures_total")
    shop.kill("secantusdb")
    not_ready = wait_for(lambda: not shop.ready("cm-api"), down_seconds + 5, 0.2)
    time.sleep(down_seconds)
    shop.start_service("secantusdb")
    restarted = time.monotonic()
    ready_again = wait_for(lambda: shop.ready("cm-api"), 60, 0.2)
    facts = {"down_s": down_seconds, "cm_api_ready_again_after_ms": _ms(time.monotonic() - restarted),
             "write_failures_retried": int(shop.metric_total("cm-api", "cmapi_mongo_write_failures_total")
                                           - failures_before)}
    problems = []
    if not not_ready:
        problems.append("cm-api stayed ready while MongoDB was down")
    if not ready_again:
        problems.append("cm-api not ready within 60 s of MongoDB's return")
    return facts, problems


def cm_api_sigkill(shop, load, down_seconds=2):
    """cm-api killed with SIGKILL mid-batch (no shutdown, no commit) and started again: the
    uncommitted events are read again and stored once (duplicate-key no-ops).

    To be sure the kill lands mid-batch, MongoDB is frozen (SIGSTOP) first, so the batch in hand
    is consumed and its write sent but not acknowledged; it is thawed once cm-api is dead. "In
    hand" is consumed less what was stored, found stored or dead-lettered: the freeze may catch
    a write already sent, whose batch was consumed before it, and then nothing new is consumed."""
    def in_hand():
        counters = shop.metrics("cm-api")
        return int(counters.get("cmapi_events_consumed_total", 0)
                   - counters.get("cmapi_purchases_inserted_total", 0)
                   - counters.get("cmapi_purchases_duplicate_total", 0)
                   - sum(value for key, value in counters.items()
                         if key.startswith("cmapi_events_dead_lettered_total")))

    shop.pause("secantusdb")
    try:
        held = wait_for(lambda: in_hand() > 0, 10, 0.1)
        in_hand_at_kill = in_hand()
        shop.kill("cm-api")
    finally:
        # A failure above must not leave MongoDB frozen for every later scenario.
        shop.resume("secantusdb")
    time.sleep(down_seconds)
    started = time.monotonic()
    shop.start_service("cm-api")
    facts = {"events_in_hand_at_kill": in_hand_at_kill, "restart_to_ready_ms": _ms(time.monotonic() - started)}
    return facts, [] if held else ["cm-api held no events while MongoDB was frozen: the kill was not mid-batch"]


def flowing_again(load, since, timeout=30):
    """Problems if no purchase is acknowledged within `timeout` seconds after `since`."""
    if wait_for(lambda: load.latencies(200, since), timeout, 0.1):
        return []
    return [f"no purchase acknowledged within {timeout} s of the restart"]


# A request sent this long before a signal has surely reached the server; one sent closer to it
# may still be in the client's socket when the server closes idle keep-alive connections, which is
# HTTP/1.1's own race (the load retries it), not a request the server dropped.
IN_FLIGHT_MARGIN_S = 0.05


def cm_server_sigterm(shop, load, down_seconds=1):
    """cm-server stopped with SIGTERM under load, as Kubernetes does: requests in flight are
    answered, it exits 0 within its shutdown bound, and after a restart purchases flow again.

    So that requests are surely in flight at the signal, kafka-mock is frozen (SIGSTOP) until
    cm-server's producer holds some unacknowledged purchases, and thawed right after the SIGTERM:
    those requests wait for their acks while cm-server shuts down, and must get their 200."""
    bound = int(shop.extra_env.get("SHUTDOWN_TIMEOUT_MS", 25000)) / 1000
    shop.pause("kafka-mock")
    try:
        held = wait_for(lambda: shop.metric("cm-server", "kafka_producer_queue_messages") >= 20, 10, 0.05)
        term_at = time.monotonic()
        shop.processes["cm-server"].send(signal.SIGTERM)
    finally:
        shop.resume("kafka-mock")
    status = shop.processes["cm-server"].wait(bound + 15)
    exited = time.monotonic()
    if status is None:
        status = shop.kill("cm-server")
    time.sleep(down_seconds)
    restarted = time.monotonic()
    shop.start_service("cm-server")
    in_flight = [s for sent, seconds, s in list(load.answers)
                 if sent < term_at - IN_FLIGHT_MARGIN_S and term_at < sent + seconds]
    unanswered = sum(1 for s in in_flight if s != 200)
    facts = {"exit_status": status, "shutdown_ms": _ms(exited - term_at), "in_flight": len(in_flight),
             "in_flight_answered_200": len(in_flight) - unanswered}
    problems = [] if status == 0 else [f"cm-server exited with {status} on SIGTERM"]
    if not held or not in_flight:
        problems.append("no request was in flight at SIGTERM: the scenario checked nothing")
    if unanswered:
        problems.append(f"{unanswered} of {len(in_flight)} requests in flight at SIGTERM got no 200")
    if exited - term_at > bound + 1:
        problems.append(f"cm-server took {exited - term_at:.1f} s to stop; SHUTDOWN_TIMEOUT_MS is {bound:.0f} s")
    return facts, problems + flowing_again(load, restarted)


def cm_server_sigkill(shop, load, down_seconds=1):
    """cm-server killed with SIGKILL under load, as an OOM kill would: its clients lose their
    connections without an answer. Whatever it had acknowledged is stored; what it had sent but
    not yet answered may be stored too, which the accounting counts as unexplained, never more
    than the requests that got no answer. After a restart purchases flow again."""
    killed_at = time.monotonic()
    status = shop.kill("cm-server")
    time.sleep(down_seconds)
    restarted = time.monotonic()
    shop.start_service("cm-server")
    cut = sum(1 for sent, seconds, s in list(load.answers) if s == 0 and sent <= killed_at <= sent + seconds)
    facts = {"requests_cut_off": cut, "restart_to_ready_ms": _ms(time.monotonic() - restarted)}
    problems = [] if status == -9 else [f"cm-server ended with {status}, not by the SIGKILL"]
    return facts, problems + flowing_again(load, restarted)


def poison_burst(shop, load, copies=10):
    """A burst of messages on the purchases topic that are not valid purchase events (written
    straight to Kafka, as a buggy or hostile producer would): each goes to the dead-letter
    topic with its reason, none is stored, and ingest goes on."""
    from confluent_kafka import Producer

    burst = uuid.uuid4().hex[:8]
    dead_before = shop.metric_total("cm-api", "cmapi_events_dead_lettered_total")
    dlq = DeadLetterReader(shop.bootstrap)
    producer = Producer({"bootstrap.servers": shop.bootstrap, "enable.idempotence": True,
                         "message.max.bytes": 2_000_000})
    keys = []
    for copy in range(copies):
        for kind, value in poison_messages(load.run, load.usernames[0]):
            keys.append(f"poison-{burst}-{kind}-{copy}")
            producer.produce(TOPIC, key=keys[-1].encode(), value=value)
        producer.poll(0)
    # Too large to dead-letter once cm-api adds its headers (its producer's message.max.bytes is
    # librdkafka's default, 1,000,000): a bounded trace must go instead.
    too_large = f"poison-{burst}-too-large-to-dead-letter"
    keys.append(too_large)
    producer.produce(TOPIC, key=too_large.encode(), value=b"z" * 999_900)
    if producer.flush(30) != 0:
        raise RuntimeError("the poison burst was not acknowledged by kafka-mock")
    dead = lambda: int(shop.metric_total("cm-api", "cmapi_events_dead_lettered_total") - dead_before)
    settled = wait_for(lambda: dead() >= len(keys), 60, 0.5)
    problems = []

    # What the dead-letter topic gained since the burst began; find each poison message by its key.
    found, reasons = {}, set()
    for key, value, headers in dlq.read():
        key = key.decode(errors="replace")
        if key.startswith(f"poison-{burst}-"):
            found[key] = found.get(key, 0) + 1
            if not headers.get(DeadLetterHeader.REASON) or not headers.get(DeadLetterHeader.SOURCE):
                problems.append(f"{key} dead-lettered without its dlq-reason and dlq-source headers")
            reasons.add(headers.get(DeadLetterHeader.REASON, b"").decode(errors="replace")[:60])
            if key == too_large and (not headers.get(DeadLetterHeader.TRACE) or value != b"z" * 1024):
                problems.append(f"{key}: expected a trace (dlq-trace header, the first 1024 bytes), got "
                                f"{len(value)} bytes and headers {sorted(headers)}")
    topic, trimmed = dlq.topic, dlq.trimmed

    facts = {"poison_sent": len(keys), "dead_lettered": dead(), "in_dlq_topic": len(found),
             "distinct_reasons": len(reasons)}
    if not settled or dead() < len(keys):
        problems.append(f"{len(keys)} poison messages sent, cm-api dead-lettered {dead()}")
    missing = [key for key in keys if key not in found]
    if missing:
        problems.append(f"{len(missing)} poison messages not in {topic}, e.g. {missing[:3]}"
                        + (f" (kafka-mock dropped the oldest messages of partitions {trimmed} meanwhile)"
                           if trimmed else ""))
    twice = [key for key, count in found.items() if count > 1]
    if twice:
        problems.append(f"{len(twice)} poison messages dead-lettered more than once, e.g. {twice[:3]}")
    for purchase_id in POISON_IDS:
        if http_get(shop.api_url, f"/purchases/{purchase_id}")[0] != 404:
            problems.append(f"poison purchase {purchase_id} was stored")
    return facts, problems


# purchaseIds the poison events carry where the event is otherwise well-formed: must stay 404.
POISON_IDS = ["00000000-0000-4000-8000-00000000dead", "00000000-0000-4000-8000-00000000beef"]


def poison_messages(run, username):
    """(kind, value bytes) of events cm-api must refuse, each broken in one way."""
    document = {"schemaVersion": 1, "purchaseId": POISON_IDS[0], "username": username, "userid": f"{run}-id0",
                "price": "1.00", "timestamp": "2024-05-31T15:54:32.204Z", "receivedAt": "2024-05-31T15:54:32.204Z"}

    def event(**changes):
        return changed(document, **changes)

    valid = event()
    return [
        ("not-json", b"this is not json"),
        ("empty", b""),
        ("array", b"[1,2,3]"),
        ("truncated", valid[: len(valid) // 2]),
        ("invalid-utf8", valid.replace(username.encode(), b"\xff\xfe\xfd")),
        ("nul-in-username", event(username=username + "\u0000x")),
        ("schema-version-2", event(schemaVersion=2)),
        ("no-purchase-id", event(purchaseId=None)),
        ("bad-purchase-id", event(purchaseId="not-a-uuid")),
        ("negative-price", event(price="-1.00", purchaseId=POISON_IDS[1])),
        ("three-decimals", event(price="1.001")),
        ("float-exponent", event(price="1e400")),
        ("operator-username", event(username={"$gt": ""})),
        ("long-username", event(username="x" * 200)),
        ("no-zone-timestamp", event(timestamp="2024-05-31T15:54:32")),
        ("deeply-nested", b'{"schemaVersion":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("huge", event(username="y" * 900_000)),
    ]


def cm_api_stalled(shop, load, stall_seconds=5):
    """cm-api stops answering (SIGSTOP: connections are accepted, nothing is answered): cm-server's
    GET /getAllUserBuys answers 504 within CM_API_TIMEOUT_MS, never hangs, while POST /buy goes
    on being acknowledged; after SIGCONT the list answers 200 again."""
    timeout = int(shop.extra_env.get("CM_API_TIMEOUT_MS", 5000)) / 1000
    server = urllib.parse.urlsplit(shop.server_url)
    results = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status, _, _ = CONNECTIONS.request(server, "GET", f"/getAllUserBuys/{load.usernames[0]}?limit=5",
                                                   timeout=30)
            except (OSError, http.client.HTTPException):
                status = 0
            results.append((sent, time.monotonic() - sent, status))
            stop.wait(0.2)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    problems = []
    if not wait_for(lambda: len(results) >= 3, 10):
        problems.append("the list readers got no answer before the stall")
    shop.pause("cm-api")
    paused_at = time.monotonic()
    try:
        time.sleep(stall_seconds)
    finally:
        shop.resume("cm-api")
    resumed_at = time.monotonic()
    # Reads sent once a stalled one would have timed out must be answered 200 again.
    wait_for(lambda: sum(1 for sent, _, _ in list(results) if sent >= resumed_at + timeout) >= 6, timeout + 20)
    stop.set()
    for thread in readers:
        thread.join()

    during = [(seconds, status) for sent, seconds, status in results if paused_at <= sent and sent + seconds <= resumed_at]
    timeouts = [seconds for seconds, status in during if status == 504]
    after = [status for sent, _, status in results if sent >= resumed_at + timeout]
    longest = max((seconds for _, seconds, _ in results), default=0)
    facts = {
        "stall_s": stall_seconds, "lists_during": len(during), "answered_504": len(timeouts),
        "504_max_ms": _ms(max(timeouts, default=0)), "longest_list_ms": _ms(longest),
        "buys_acknowledged_during": len(load.latencies(200, paused_at, resumed_at)),
    }
    if not timeouts or len(timeouts) != len(during):
        problems.append(f"lists while cm-api was stalled: {sorted(set(s for _, s in during))}, expected only 504")
    if longest > timeout + 2:
        problems.append(f"a list request took {facts['longest_list_ms']} ms; CM_API_TIMEOUT_MS is {timeout * 1000:.0f}")
    if not after or any(status != 200 for status in after):
        problems.append(f"lists after cm-api resumed: {sorted(set(after))}, expected 200")
    if facts["buys_acknowledged_during"] == 0:
        problems.append("no purchase acknowledged while cm-api was stalled")
    return facts, problems


def mongodb_refuses_documents(shop, load, refusals=5):
    """MongoDB refuses some documents for good (a collection validator against one user, as a
    schema change gone wrong would): those purchases go to the dead-letter topic with MongoDB's
    code and reason, every other one is stored, the offsets move on and cm-api stays ready. Then
    the operator's fix: the validator removed, `cm-api dlq redrive` (twice, as a nervous operator
    would): the first run sends each letter back once, the second none, and every refused purchase
    is stored, once."""
    collection = shop.mongo_collection()
    refused_user = load.usernames[0]
    key = 'cmapi_events_dead_lettered_total{cause="refused_by_mongodb"}'
    before = shop.metric("cm-api", key)
    refused = lambda: int(shop.metric("cm-api", key) - before)
    readiness = []
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    collection.database.command("collMod", collection.name, validator={"username": {"$ne": refused_user}})
    try:
        enough = wait_for(lambda: readiness.append(shop.ready("cm-api", INGEST)) or refused() >= refusals, 60, 0.2)
    finally:
        collection.database.command("collMod", collection.name, validator={})
    problems = []

    def letters():
        code, out, err = shop.dlq("list", "--json", "--reason", "MongoDB refused", "--since", since)
        if code != 0:
            raise RuntimeError(f"cm-api dlq list failed ({code}): {err}")
        return [json.loads(line) for line in out.splitlines()]

    # A batch written as the validator went may still be refused: wait until the topic holds all
    # cm-api counted, then redrive.
    listed = wait_for(lambda: len(letters()) == refused(), 30, 0.5)
    found = letters()
    if not listed:
        problems.append(f"cm-api counted {refused()} refusals, the dead-letter topic lists {len(found)}")
    redriven = []
    for attempt in range(2):
        code, out, err = shop.dlq("redrive", "--reason", "MongoDB refused", "--since", since)
        redriven.append(sum(1 for line in out.splitlines() if line.startswith("redriven ")))
        if code != 0:
            problems.append(f"cm-api dlq redrive failed ({code}): {err or out}")
    facts = {"refused_dead_lettered": refused(), "listed": len(found), "redriven": "+".join(map(str, redriven)),
             "readiness_samples": len(readiness)}
    if not enough:
        problems.append(f"only {refused()} purchases of {refused_user} dead-lettered while MongoDB refused them")
    if not all(readiness):
        problems.append("cm-api was not ready while MongoDB refused single documents (they are settled)")
    if redriven != [len(found), 0]:
        problems.append(f"redrove {redriven} of {len(found)} letters in two runs, expected {len(found)}+0")
    if any(letter.get("mongodbCode") != "121" or not letter.get("purchaseId") for letter in found):
        problems.append(f"letters without MongoDB's code or a purchase: {found[:2]}")
    return facts, problems


def mongodb_permanent_error(shop, load, hold_seconds=3):
    """MongoDB answers every write of cm-api with an error no retry fixes (Unauthorized, as after
    a revoked role): cm-api says so in /readyz/ingest, logs it at error, counts it, commits nothing
    and retries slowly, while its reads stay ready; once the role is back it stores the held
    purchases, each once."""
    admin = shop.mongo().admin
    key = 'cmapi_mongo_write_failures_total{class="permanent"}'
    before = shop.metric("cm-api", key)
    admin.command("configureFailPoint", "failCommand", mode="alwaysOn",
                  data={"failCommands": ["insert"], "errorCode": 13, "appName": "cm-api"})
    try:
        said = wait_for(lambda: "retrying will not help" in shop.readiness("cm-api", INGEST)[1], 30, 0.2)
        reason = shop.readiness("cm-api", INGEST)[1]
        reads_ready = shop.ready("cm-api")
        counted = wait_for(lambda: shop.metric("cm-api", key) > before, 10, 0.2)
        time.sleep(hold_seconds)
    finally:
        admin.command("configureFailPoint", "failCommand", mode="off")
    fixed = time.monotonic()
    ready = wait_for(lambda: shop.ready("cm-api", INGEST), 60, 0.2)
    logged = "MongoDB refuses writes; retrying will not help" in shop.processes["cm-api"].tail(400)
    facts = {"ready_again_after_fix_ms": _ms(time.monotonic() - fixed),
             "permanent_failures_counted": int(shop.metric("cm-api", key) - before)}
    problems = []
    if not said:
        problems.append(f"cm-api's /readyz/ingest did not report the permanent error: {reason!r}")
    if not reads_ready:
        problems.append("a write failure took cm-api's reads out of readiness (/readyz)")
    if not counted:
        problems.append(f"{key} did not count the permanent error")
    if not logged:
        problems.append("cm-api logged no error about the permanent failure")
    if not ready:
        problems.append("cm-api's ingest not ready within 60 s of the fix")
    return facts, problems


def resident_mb(pid):
    """The process's resident memory (VmRSS) in MB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def mongodb_long_outage(shop, load, down_seconds=None, batch=500, growth_mb=16):
    """MongoDB down for a long time under load (LONG_OUTAGE_SECONDS: 20 s in make test, 180 s in
    make test-long-outage) with a rebalance in the middle: a second cm-api, in the group since
    before the outage and holding its own batch, leaves (SIGTERM), and its partitions move to the
    first while that one holds its batch. cm-api holds at most one batch (`batch` messages, every
    partition paused, the new ones too), its memory stays flat (grows by less than `growth_mb`
    from the outage's first seconds to its end), and once MongoDB is back every acknowledged
    purchase is stored once (the accounting)."""
    down_seconds = down_seconds or float(os.environ.get("LONG_OUTAGE_SECONDS", "20"))
    first = shop.processes["cm-api"]
    api_port = int(shop.api_url.rsplit(":", 1)[1])

    def held_messages(port):
        status, body = http_get(f"http://127.0.0.1:{port}", "/metrics", timeout=5)
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("cmapi_ingest_held_messages "):
                return float(line.split()[1])
        return 0.0

    def ingest_ready(port):
        return http_get(f"http://127.0.0.1:{port}", INGEST, timeout=5)[0] == 200

    samples, most_held, sampling = [], [0.0], threading.Event()

    def sample():
        while not sampling.wait(0.5):  # the sampling period, not a wait for a state
            samples.append(resident_mb(first.pid))
            most_held[0] = max(most_held[0], held_messages(api_port))

    # A second member first: the group shares the partitions between the two.
    second_port = free_port()
    second = Process("cm-api-2", first.argv, dict(first.env, PORT=str(second_port)), os.path.dirname(first.log_path))
    second.start()
    sampler = threading.Thread(target=sample, name="outage-sampler")
    problems, leave_s = [], None
    try:
        joined = wait_for(lambda: second.alive and ingest_ready(second_port), 120, 0.5)
        shop.kill("secantusdb")
        started = time.monotonic()
        sampler.start()
        try:
            ingest_down = wait_for(lambda: not ingest_ready(api_port), 30, 0.2)
            second_held = wait_for(lambda: held_messages(second_port) > 0, 30, 0.2)
            time.sleep(max(0.0, started + down_seconds * 0.4 - time.monotonic()))  # the fault's length
            # It leaves while both hold a batch: its partitions move to the first, which must pause them.
            leaving = time.monotonic()
            left = second.stop(signal.SIGTERM, 60) == 0
            leave_s = round(time.monotonic() - leaving, 1)
            time.sleep(max(0.0, started + down_seconds - time.monotonic()))  # the fault's length
        finally:
            sampling.set()
            sampler.join()
            shop.start_service("secantusdb")
    finally:
        if second.alive:
            second.stop(signal.SIGKILL)
    ingest_back = wait_for(lambda: ingest_ready(api_port), 60, 0.2)
    if not samples:
        return {}, ["no memory sample taken during the outage"]
    early = max(samples[: max(1, len(samples) // 5)])
    facts = {"down_s": round(time.monotonic() - started), "rss_start_mb": round(early, 1),
             "rss_max_mb": round(max(samples), 1), "rss_end_mb": round(samples[-1], 1),
             "most_held": int(most_held[0]), "samples": len(samples), "second_left_in_s": leave_s}
    if not joined:
        problems.append("the second cm-api did not join and get ready")
    if not ingest_down:
        problems.append("cm-api's ingest stayed ready while MongoDB was down")
    if not second_held:
        problems.append("the second cm-api held no batch: it had no partitions")
    if not left:
        problems.append("the second cm-api did not stop cleanly on SIGTERM while MongoDB was down")
    if most_held[0] > batch:
        problems.append(f"cm-api held {int(most_held[0])} messages, more than one batch ({batch})")
    if max(samples) - early > growth_mb:
        problems.append(f"cm-api's memory grew from {early:.1f} MB to {max(samples):.1f} MB during the outage")
    if not ingest_back:
        problems.append("cm-api's ingest not ready within 60 s of MongoDB's return")
    return facts, problems


# Scenarios in which acknowledged purchases may end on the dead-letter topic (with their reason)
# and stay there. None: mongodb-refuses-documents redrives what it dead-lettered.
DEAD_LETTERING = set()

FAULTS = {
    "kafka-broker-outage": kafka_broker_outage,
    "mongodb-killed-and-restarted": mongodb_killed_and_restarted,
    "cm-api-sigkill": cm_api_sigkill,
    "cm-server-sigterm": cm_server_sigterm,
    "cm-server-sigkill": cm_server_sigkill,
    "poison-burst": poison_burst,
    "cm-api-stalled": cm_api_stalled,
    "mongodb-refuses-documents": mongodb_refuses_documents,
    "mongodb-permanent-error": mongodb_permanent_error,
    "mongodb-long-outage": mongodb_long_outage,
}


def run_id(name):
    return f"{name[:12]}-{uuid.uuid4().hex[:6]}"


