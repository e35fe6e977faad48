"""Scaling scenarios on the fleet (shoptest/fleet.py) under the autoscaler (shoptest/autoscaler.py),
each ending in the exact accounting of the reliability suite and the replica counts the
autoscaler went through:

    scenario=NAME acknowledged=N stored=N missing=0 duplicated=0 replicas=2,6,5,4,3,2

burst   cm-api's replicas are paused while a burst of purchases is acknowledged, so a backlog
        builds as it would behind a slow store; then they resume and the autoscaler, reading the
        lag from the broker, scales out toward the partitions, the backlog drains through the
        rebalances, and it scales back in one replica per period after the stabilisation window.
mongodb-down   MongoDB stops while purchases keep coming: lag that no replica can drain. The
        autoscaler runs the chart's setting (excludePersistentLag true) and, beside it on the same
        offsets, a shadow with excludePersistentLag false; the first must hold its replicas, the
        shadow shows what KEDA would otherwise do. Then MongoDB returns, everything drains (the
        autoscaler scaling out for it) and the replicas return to the minimum.
sigkill-scale-in   under steady load, a backlog (cm-api paused) takes the autoscaler from two
        replicas to four (maxReplicas 4 for this scenario); once drained it scales back in to two,
        and the first replica removed is SIGKILLed (a node lost at that moment) with a batch in
        hand (MongoDB frozen until it holds one), the second stopped as usual. The killed one's
        uncommitted events are read again by the others and stored once.
rolling-restart   every cm-server replica replaced under steady POST load through nginx, as the
        Deployment's RollingUpdate does it with the chart's maxSurge and maxUnavailable: a new pod
        joins the ingress's endpoints once ready, an old one leaves them when its deletion starts,
        pauses for the chart's preStop sleep, and then shuts down on SIGTERM within the grace
        period. The client must see no error at all (no 5xx, no failed connection) and nothing
        acknowledged may be lost.
request-rate   cm-server's own trigger: its ScaledObject's query evaluated by the fleet's
        Prometheus as KEDA evaluates it, under a steady trickle of purchases through nginx and a
        surge on top of it; the replicas rise to the rate's share per replica and return to the
        minimum once the surge is over, joining and leaving the ingress's endpoints, and the
        client sees no error through either change.
"""

import json
import math
import signal
import threading
import time
import urllib.parse

from shoptest import TOPIC
from shoptest.accounting import Load, account
from shoptest.autoscaler import Autoscaler, Controller, KafkaLag, PrometheusController, ScalingSpec
from shoptest.charts import of_kind, render
from shoptest.net import http_get
from shoptest.waiting import wait_for


def chart_spec(compression, values):
    """The cm-api chart's ScaledObject and grace period for `values`, times divided by `compression`."""
    objects = render("cm-api", values)
    spec = ScalingSpec.from_scaled_object(of_kind(objects, "ScaledObject")[0], compression)
    grace = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    return spec, grace


def burst(fleet, compression=20, lag_threshold=500, rate=400, seconds=10, log=print):
    """Returns (accounting, controller)."""
    spec, grace = chart_spec(compression, {"autoscaling": {"lagThreshold": lag_threshold}})
    load = Load(fleet.server_url, "burst", rate)
    apis = fleet.replicas("cm-api")
    for name in apis:
        fleet.processes[name].send(signal.SIGSTOP)
    try:
        load.start()
        time.sleep(seconds)  # the burst's length: the load runs on its own schedule meanwhile
        load.stop()
    finally:
        for name in apis:
            fleet.processes[name].send(signal.SIGCONT)
    log(f"burst: {len(load.acknowledged)} purchases acknowledged while cm-api was paused")
    controller = Controller(fleet, spec, TOPIC, "scalable-shop", grace=grace, log=log).start()
    try:
        minimum = spec.min_replicas
        scaled_out = wait_for(lambda: max(controller.sequence) > minimum, 60)
        drained = wait_for(lambda: controller.samples and controller.samples[-1].get("lag") == 0, 120)
        # Back to the minimum: the window, then one replica per period.
        back = wait_for(lambda: len(fleet.replicas("cm-api")) == minimum and controller.sequence[-1] == minimum,
                        spec.down.window + (max(controller.sequence) - minimum + 2) * spec.down.policies[0].period + 30)
    finally:
        controller.stop()
    accounting = account(load, fleet.api_url, settle=120)
    accounting.scaled_out, accounting.drained, accounting.back = scaled_out, drained, back
    return accounting, controller


def mongodb_down(fleet, compression=20, lag_threshold=500, rate=200, polls=12, log=print):
    """Returns (accounting, controller, shadow sequence)."""
    spec, grace = chart_spec(compression, {"autoscaling": {"lagThreshold": lag_threshold}})
    shadow_spec, _ = chart_spec(compression, {"autoscaling": {"lagThreshold": lag_threshold,
                                                              "excludePersistentLag": False}})
    assert spec.exclude_persistent_lag and not shadow_spec.exclude_persistent_lag
    shadow_lag, shadow = KafkaLag(shadow_spec), Autoscaler(shadow_spec)
    shadow_sequence = [len(fleet.replicas("cm-api"))]
    controller = Controller(fleet, spec, TOPIC, "scalable-shop", grace=grace, log=log)

    def with_shadow(partitions, now, current):
        metric = shadow_lag.read(partitions)[0]
        wanted, reason = shadow.decide(now, shadow_sequence[-1], metric)
        if wanted != shadow_sequence[-1]:
            shadow_sequence.append(wanted)
        log(f"shadow (excludePersistentLag false) t={now:.1f}s metric={metric} -> {wanted}: {reason}")

    controller.observer = with_shadow
    load = Load(fleet.server_url, "mongodb-down", rate).start()
    try:
        # The group has committed on every partition (a group that never did has no offset to
        # stand still: KEDA counts its whole backlog, excludePersistentLag or not).
        wait_for(lambda: all(committed is not None for committed, _ in controller.offsets().values()), 60)
        # The autoscaler was watching before MongoDB went (KEDA polls all along).
        controller.start()
        wait_for(lambda: len(controller.samples) >= 2, 30)
        fleet.kill("secantusdb")
        down_from = len(controller.samples)
        # The autoscaler's own polls while MongoDB is down (its period, not a wait for a condition).
        wait_for(lambda: len(controller.samples) >= down_from + polls, polls * spec.polling_interval * 4 + 30)
        held = list(controller.sequence)
        fleet.start_service("secantusdb")
    finally:
        load.stop()
    try:
        drained = wait_for(lambda: controller.samples and controller.samples[-1].get("lag") == 0, 180)
        back = wait_for(lambda: len(fleet.replicas("cm-api")) == spec.min_replicas
                        and controller.sequence[-1] == spec.min_replicas,
                        spec.down.window + (spec.max_replicas + 2) * spec.down.policies[0].period + 30)
    finally:
        controller.stop()
    accounting = account(load, fleet.api_url, settle=120)
    accounting.held, accounting.drained, accounting.back = held, drained, back
    return accounting, controller, shadow_sequence


def save_samples(path, name, accounting, controller):
    """The autoscaler's polls (Controller.samples) and the line."""
    with open(path, "w") as f:
        json.dump({"scenario": name, "line": line(name, accounting, controller),
                   "compression": controller.spec.compression, "lag_threshold": controller.spec.lag_threshold,
                   "samples": controller.samples}, f)


def sigkill_during_scale_in(fleet, compression=20, lag_threshold=500, rate=150, log=print):
    """Returns (accounting, controller): the replicas' exits are in controller.removed."""
    spec, grace = chart_spec(compression, {"autoscaling": {"lagThreshold": lag_threshold, "maxReplicas": 4}})
    load = Load(fleet.server_url, "sigkill-scale-in", rate).start()
    controller = Controller(fleet, spec, TOPIC, "scalable-shop", grace=grace, log=log)
    controller.removal_signals = [signal.SIGKILL]
    killed_in_hand = []

    def in_hand(name):
        counters = fleet.metrics(name)
        return int(counters.get("cmapi_events_consumed_total", 0)
                   - counters.get("cmapi_purchases_inserted_total", 0)
                   - counters.get("cmapi_purchases_duplicate_total", 0)
                   - sum(value for key, value in counters.items()
                         if key.startswith("cmapi_events_dead_lettered_total")))

    def removal(name, number, remove):
        """The SIGKILL lands mid-batch: MongoDB is frozen until the replica holds events it has
        consumed and not stored (as the reliability suite's cm-api-sigkill does), then thawed."""
        if number != signal.SIGKILL:
            return remove()
        fleet.pause("secantusdb")
        try:
            wait_for(lambda: in_hand(name) > 0, 10, 0.1)
            killed_in_hand.append(in_hand(name))
            return remove()
        finally:
            fleet.resume("secantusdb")

    controller.removal = removal
    apis = fleet.replicas("cm-api")
    surge = Load(fleet.server_url, "sigkill-scale-in-surge", 500)
    try:
        # A backlog for more than three replicas' worth of lag: cm-api paused while a surge runs
        # on top of the load, for less than the consumers' session timeout (10 s). Paused longer,
        # the members are evicted and rejoin beside the new ones, and once in librdkafka's mock
        # coordinator that rebalance never settled (docs/SCALING.md).
        for name in apis:
            fleet.processes[name].send(signal.SIGSTOP)
        try:
            surge.start()
            wait_for(lambda: len(surge.acknowledged) + len(load.acknowledged) > 3.5 * lag_threshold, 8)
            surge.stop()
        finally:
            for name in apis:
                fleet.processes[name].send(signal.SIGCONT)
        controller.start()
        scaled_out = wait_for(lambda: max(controller.sequence) == spec.max_replicas, 60)
        back = scaled_out and wait_for(lambda: len(fleet.replicas("cm-api")) == spec.min_replicas,
                                       spec.down.window + 4 * spec.down.policies[0].period + 120)
        since = time.monotonic()
        # Purchases keep being stored after the scale-in, by the two that are left.
        wait_for(lambda: load.statuses(since=since).get(200, 0) > rate, 30)
    finally:
        load.stop()
        if surge._thread is not None and not surge._stop.is_set():
            surge.stop()
        controller.stop()
    accounting = [account(each, fleet.api_url, settle=120) for each in (load, surge)]
    accounting[0].back, accounting[0].killed_in_hand = back, killed_in_hand
    return accounting, controller


def rolling_update_plan(deployment, desired):
    """(maxSurge, maxUnavailable, preStop sleep, grace period) of a rendered Deployment for
    `desired` replicas: a percentage of surge rounds up, of unavailability down, as the
    Deployment controller resolves them."""
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]

    def resolve(value, rounding):
        if isinstance(value, str) and value.endswith("%"):
            return rounding(desired * int(value[:-1]) / 100)
        return int(value)

    surge, unavailable = resolve(rolling["maxSurge"], math.ceil), resolve(rolling["maxUnavailable"], math.floor)
    assert surge or unavailable, "the API server refuses maxSurge and maxUnavailable both 0"
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    return surge, unavailable, pre_stop, pod["terminationGracePeriodSeconds"]


def rolling_restart(fleet, rate=100, log=print):
    """Returns (accounting, load, sequence, exits): `sequence` the cm-server pods not terminating
    after each step, `exits` the old replicas' (name, exit status)."""
    deployment = of_kind(render("cm-server", {"auth": {"mode": "none"}}), "Deployment")[0]
    old = fleet.replicas("cm-server")
    desired = len(old)
    surge, unavailable, pre_stop, grace = rolling_update_plan(deployment, desired)
    log(f"rolling restart of {old}: maxSurge {surge}, maxUnavailable {unavailable}, preStop {pre_stop} s, "
        f"grace {grace} s")
    new, exits, terminations, sequence = [], [], [], [desired]
    load = Load(f"http://127.0.0.1:{fleet.ingress_port}/scalable-shop-cm-server/", "rolling-restart", rate).start()

    def terminate(name):
        exits.append((name, fleet.terminate_replica(name, grace, pre_stop)))
        log(f"{name} exited with {exits[-1][1]}")

    try:
        wait_for(lambda: len(load.acknowledged) > rate, 30)
        while old:
            # The new ReplicaSet grows within the surge; add_replica returns once the pod is ready
            # and in the ingress's endpoints.
            while len(old) + len(new) < desired + surge and len(new) < desired:
                new.append(fleet.add_replica("cm-server"))
                sequence.append(len(old) + len(new))
                log(f"{new[-1]} ready and in the endpoints")
            # The old one shrinks while the available pods stay at least desired - maxUnavailable.
            count = len(old) + len(new) - (desired - unavailable)
            assert count > 0, "the rollout cannot progress"
            for name in old[:count]:
                log(f"{name} terminating")
                terminations.append(threading.Thread(target=terminate, args=(name,), name=f"terminate-{name}"))
                terminations[-1].start()
            old = old[count:]
            sequence.append(len(old) + len(new))
        for thread in terminations:
            thread.join()
        since = time.monotonic()
        # The new replicas serve on after the last old one is gone.
        wait_for(lambda: load.statuses(since=since).get(200, 0) > rate, 30)
    finally:
        load.stop()
    accounting = account(load, fleet.api_url, settle=120)
    return accounting, load, sequence, exits


def request_rate(fleet, compression=10, threshold=10, trickle=5, surge=35, log=print):
    """Returns (accountings, loads, controller)."""
    objects = render("cm-server", {"auth": {"mode": "none"}, "ingress": {"allowUnauthenticated": True},
                                   "autoscaling": {"enabled": True, "type": "keda",
                                                   "keda": {"threshold": str(threshold)}}})
    spec = ScalingSpec.from_scaled_object(of_kind(objects, "ScaledObject")[0], compression)
    _, _, pre_stop, grace = rolling_update_plan(of_kind(objects, "Deployment")[0], spec.min_replicas)
    ingress = f"http://127.0.0.1:{fleet.ingress_port}/scalable-shop-cm-server/"
    controller = PrometheusController(fleet, spec, grace=grace, pre_stop=pre_stop, log=log)
    loads = [Load(ingress, "request-rate-trickle", trickle).start()]
    try:
        # The query has data once Prometheus scraped a request (until then KEDA's read fails).
        query = urllib.parse.urlencode({"query": spec.query})
        wait_for(lambda: json.loads(http_get(fleet.prometheus_url, "/api/v1/query?" + query)[1] or b"{}")
                 .get("data", {}).get("result"), 60)
        controller.start()
        loads.append(Load(ingress, "request-rate-surge", surge).start())
        scaled_out = wait_for(lambda: max(controller.sequence) >= math.ceil((trickle + surge) / threshold), 150)
        loads[1].stop()
        log(f"surge over at {controller.sequence}")
        back = wait_for(lambda: controller.sequence[-1] == spec.min_replicas
                        and len(fleet.replicas("cm-server")) == spec.min_replicas, 240)
    finally:
        for load in loads:
            if not load._stop.is_set():
                load.stop()
        controller.stop()
    accountings = [account(load, fleet.api_url, settle=120) for load in loads]
    accountings[0].scaled_out, accountings[0].back = scaled_out, back
    return accountings, loads, controller


def line(name, accounting, controller=None, sequence=None):
    """The scenario's line; `accounting` may be a list (several loads), summed."""
    sequence = sequence or controller.sequence
    accountings = accounting if isinstance(accounting, list) else [accounting]
    total = lambda field: sum(len(a.missing) if field == "missing" else getattr(a, field)  # noqa: E731
                              for a in accountings)
    return (f"scenario={name} acknowledged={total('acknowledged')} stored={total('stored')} "
            f"missing={total('missing')} duplicated={total('duplicated')} "
            f"replicas={','.join(str(r) for r in sequence)}")
