"""How KEDA 2.18 and the HorizontalPodAutoscaler decide cm-api's and cm-server's replica counts
(issue 18, part 2).

The decision model only, as pure functions of what they read, so that it can be checked against
their documented behaviour without a cluster; every parameter comes from the cm-api chart's
rendered ScaledObject (`ScalingSpec.from_scaled_object`), with time compressed by a stated factor.
The controller that reads the lag from the broker and starts and stops replicas of the fleet
builds on it.

KEDA's Apache Kafka scaler (pkg/scalers/kafka_scaler.go, getLagForPartition and getTotalLag):
    lag of a partition = end offset - committed offset; with no committed offset: the end offset
    under offsetResetPolicy earliest, 1 under latest (0 for either with scaleToZeroOnInvalidOffset);
    with excludePersistentLag a partition whose committed offset did not move since the previous
    poll counts 0 (but still counts for activity); without allowIdleConsumers (or with
    limitToPartitionsWithLag) the total is capped at lagThreshold times the partitions (times the
    partitions with lag); active when the lag, persistent lag included, exceeds
    activationLagThreshold.
The HorizontalPodAutoscaler (pkg/controller/podautoscaler, AverageValue external metric):
    desired = ceil(total / lagThreshold), unless total / (lagThreshold * current) is within the
    10 % tolerance of 1; then the stabilisation windows (up: the smallest recommendation in the
    window, down: the largest), the scaling policies over their periods (selectPolicy Max picks
    the policy that allows the biggest change), and min/max replicas.
KEDA's Prometheus scaler (pkg/scalers/prometheus_scaler.go, ExecutePromQuery): the query's
    instant value at the poll; an empty result, an empty value, NaN or Inf is 0 with
    ignoreNullValues (its default, true) and a failed read without it; more than one series is
    always a failed read; active when the value exceeds activationThreshold.
KEDA's fallback: after failureThreshold failed reads, fallback.replicas, or with behavior
    currentReplicasIfHigher the current count when it is higher.
"""

import math
import signal
import time
from dataclasses import dataclass, field

from shoptest import kafka

TOLERANCE = 0.1


@dataclass
class Policy:
    kind: str  # "Pods" or "Percent"
    value: int
    period: float  # seconds, compressed


@dataclass
class Rules:
    window: float  # stabilizationWindowSeconds, compressed
    policies: list
    select: str = "Max"


@dataclass
class ScalingSpec:
    """A ScaledObject with one trigger (kafka or prometheus, AverageValue): `target` is the value
    per replica the HPA aims for (lagThreshold or threshold)."""
    min_replicas: int
    max_replicas: int
    polling_interval: float
    trigger: str
    target: float
    activation_threshold: float
    fallback_failures: int
    fallback_replicas: int
    fallback_behavior: str
    up: Rules
    down: Rules
    compression: float = 1.0
    # kafka
    offset_reset_policy: str = "latest"
    allow_idle_consumers: bool = False
    exclude_persistent_lag: bool = False
    limit_to_partitions_with_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False
    # prometheus
    query: str = ""
    ignore_null_values: bool = True

    @property
    def lag_threshold(self):
        return int(self.target)

    @classmethod
    def from_scaled_object(cls, scaled, compression=1.0):
        """The spec of a rendered ScaledObject with one kafka or prometheus trigger; times divided
        by `compression`."""
        spec = scaled["spec"]
        trigger = spec["triggers"][0]
        assert trigger["type"] in ("kafka", "prometheus"), trigger
        assert trigger.get("metricType", "AverageValue") == "AverageValue", trigger
        meta = trigger["metadata"]
        flag = lambda name: str(meta.get(name, "false")).lower() == "true"  # noqa: E731
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})

        def rules(direction, default_window):
            given = behavior.get(direction, {})
            policies = [Policy(p["type"], int(p["value"]), p["periodSeconds"] / compression)
                        for p in given.get("policies", [])]
            return Rules(given.get("stabilizationWindowSeconds", default_window) / compression, policies,
                         given.get("selectPolicy", "Max"))

        fallback = spec.get("fallback", {})
        common = dict(
            min_replicas=int(spec.get("minReplicaCount", 0)), max_replicas=int(spec.get("maxReplicaCount", 100)),
            polling_interval=spec.get("pollingInterval", 30) / compression, trigger=trigger["type"],
            fallback_failures=int(fallback.get("failureThreshold", 0)), fallback_replicas=int(fallback.get("replicas", 0)),
            fallback_behavior=fallback.get("behavior", "static"),
            up=rules("scaleUp", 0), down=rules("scaleDown", 300), compression=compression)
        if trigger["type"] == "prometheus":
            return cls(target=float(meta["threshold"]), activation_threshold=float(meta.get("activationThreshold", 0)),
                       query=meta["query"], ignore_null_values=str(meta.get("ignoreNullValues", "true")).lower() == "true",
                       **common)
        return cls(
            target=int(meta.get("lagThreshold", 10)), activation_threshold=int(meta.get("activationLagThreshold", 0)),
            offset_reset_policy=meta.get("offsetResetPolicy", "latest"),
            allow_idle_consumers=flag("allowIdleConsumers"), exclude_persistent_lag=flag("excludePersistentLag"),
            limit_to_partitions_with_lag=flag("limitToPartitionsWithLag"),
            scale_to_zero_on_invalid_offset=flag("scaleToZeroOnInvalidOffset"), **common)


@dataclass
class KafkaLag:
    """KEDA's Kafka scaler: the metric and activity from the offsets it reads each poll."""
    spec: ScalingSpec
    previous: dict = field(default_factory=dict)  # partition -> committed offset at the last poll

    def read(self, partitions):
        """`partitions`: {partition: (committed offset or None, end offset)}. Returns (metric,
        active, lag with the persistent lag, partitions with lag)."""
        spec = self.spec
        total = with_persistent = with_lag = 0
        for partition, (committed, end) in sorted(partitions.items()):
            if committed is None:
                if spec.scale_to_zero_on_invalid_offset:
                    lag = persistent = 0
                elif spec.offset_reset_policy == "latest":
                    lag = persistent = 1
                else:
                    lag = persistent = end
            else:
                lag = persistent = end - committed
                if spec.exclude_persistent_lag:
                    if partition in self.previous and self.previous[partition] == committed:
                        lag = 0
                    else:
                        self.previous[partition] = committed
            total += lag
            with_persistent += persistent
            with_lag += 1 if lag > 0 else 0
        if not spec.allow_idle_consumers or spec.limit_to_partitions_with_lag:
            bound = with_lag if spec.limit_to_partitions_with_lag else len(partitions)
            if total // spec.lag_threshold > bound:
                total = bound * spec.lag_threshold
        return total, with_persistent > spec.activation_threshold, with_persistent, with_lag


def prometheus_value(spec, answer):
    """KEDA's Prometheus scaler on the JSON answer of /api/v1/query: (value, active); a
    ValueError for what KEDA counts as a failed read."""
    if answer.get("status") != "success":
        raise ValueError(f"prometheus query api returned {answer.get('status')}: {answer.get('error')}")
    result = answer["data"]["result"]
    if answer["data"]["resultType"] == "scalar":
        result = [{"value": result}]
    if len(result) > 1:
        raise ValueError(f"prometheus query {spec.query} returned multiple elements")
    pair = result[0].get("value", []) if result else []
    if 0 < len(pair) < 2:
        raise ValueError(f"prometheus query {spec.query} didn't return enough values")
    value = float(pair[1]) if pair else None
    if value is None or math.isnan(value) or math.isinf(value):
        if not spec.ignore_null_values:
            raise ValueError("prometheus metrics 'prometheus' target may be lost, the result is empty"
                             if value is None else f"prometheus query returns {value}")
        value = 0.0
    return value, value > spec.activation_threshold


@dataclass
class Autoscaler:
    """The HorizontalPodAutoscaler over KEDA's metric, with KEDA's fallback. `decide` is called
    once per polling interval with the time (seconds), the running replicas and the metric (None
    when it could not be read); it returns the replicas wanted and the reason."""
    spec: ScalingSpec
    recommendations: list = field(default_factory=list)  # (time, replicas)
    events: list = field(default_factory=list)  # (time, change)
    failures: int = 0

    def decide(self, now, current, metric):
        spec = self.spec
        if metric is None:
            self.failures += 1
            if spec.fallback_failures and self.failures >= spec.fallback_failures:
                wanted = spec.fallback_replicas
                if spec.fallback_behavior == "currentReplicasIfHigher":
                    wanted = max(current, spec.fallback_replicas)
                elif spec.fallback_behavior == "currentReplicas":
                    wanted = current
                elif spec.fallback_behavior == "currentReplicasIfLower":
                    wanted = min(current, spec.fallback_replicas)
                return self._record(now, current, wanted, f"fallback ({self.failures} failed reads)")
            return current, f"metric unreadable ({self.failures} of {spec.fallback_failures})"
        self.failures = 0
        ratio = metric / (spec.target * current) if current else math.inf
        raw = current if abs(ratio - 1) <= TOLERANCE else math.ceil(metric / spec.target)
        stabilized = self._stabilize(now, current, raw)
        wanted = self._limit(now, current, stabilized)
        return self._record(now, current, wanted,
                            f"{metric:g} / target {spec.target:g}: raw {raw}, stabilized {stabilized}")

    def _record(self, now, current, wanted, reason):
        wanted = max(self.spec.min_replicas, min(self.spec.max_replicas, wanted))
        if wanted != current:
            self.events.append((now, wanted - current))
        return wanted, reason

    def _stabilize(self, now, current, raw):
        up = down = raw
        for at, replicas in self.recommendations:
            if at > now - self.spec.up.window:
                up = min(up, replicas)
            if at > now - self.spec.down.window:
                down = max(down, replicas)
        horizon = max(self.spec.up.window, self.spec.down.window)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - horizon] + [(now, raw)]
        return min(max(current, up), down)

    def _changed_within(self, now, period, sign):
        return sum(change for at, change in self.events if at > now - period and change * sign > 0)

    def _limit(self, now, current, desired):
        if desired > current:
            limits = []
            for policy in self.spec.up.policies:
                start = current - self._changed_within(now, policy.period, 1)
                limits.append(start + policy.value if policy.kind == "Pods"
                              else math.ceil(start * (1 + policy.value / 100)))
            if self.spec.up.select == "Disabled":
                return current
            if limits:
                desired = min(desired, max(limits) if self.spec.up.select == "Max" else min(limits))
        elif desired < current:
            limits = []
            for policy in self.spec.down.policies:
                start = current - self._changed_within(now, policy.period, -1)  # removals are negative
                limits.append(start - policy.value if policy.kind == "Pods"
                              else math.floor(start * (1 - policy.value / 100)))
            if self.spec.down.select == "Disabled":
                return current
            if limits:
                desired = max(desired, min(limits) if self.spec.down.select == "Max" else max(limits))
        return desired


class Controller:
    """Applies the model to a running fleet's cm-api replicas, as KEDA and the HPA would: every
    polling interval it reads the group's committed offsets and the partitions' end offsets from
    the broker with a real Kafka client (confluent-kafka; OffsetFetch and ListOffsets, joining no
    group), decides, and starts replicas or stops the newest with SIGTERM and the chart's grace
    period. Each decision is logged with its inputs; `samples` keeps them for the picture."""

    service = "cm-api"

    def __init__(self, fleet, spec, topic, group, grace=30, log=print):
        import threading

        self.fleet, self.spec, self.topic, self.group, self.grace, self.log = fleet, spec, topic, group, grace, log
        self.lag = KafkaLag(spec)
        self.scaler = Autoscaler(spec)
        # Each poll: t (seconds), replicas, wanted, metric, and the scaler's own fields (kafka: lag,
        # committed total, freshness: the age in seconds of the oldest event not yet committed).
        self.samples = []
        self._reader = None
        self.sequence = [len(fleet.replicas(self.service))]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)
        self._consumer = None
        # Called with each poll's offsets: what a second model would decide from the same read.
        self.observer = None
        # Signals for the next removals, in order (then SIGTERM): a scenario's lost pod.
        self.removal_signals = []
        self.removed = []  # (name, exit status)
        # Called as removal(name, signal, remove) to remove a replica around what a scenario
        # needs at that moment; remove() does it.
        self.removal = lambda name, number, remove: remove()

    def offsets(self):
        from confluent_kafka import Consumer

        if self._consumer is None:
            self._consumer = Consumer({"bootstrap.servers": self.fleet.bootstrap, "group.id": self.group,
                                       "enable.auto.commit": False})
        return kafka.group_offsets(self._consumer, self.topic)

    def start(self):
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        for consumer in (self._consumer, self._reader):
            if consumer is not None:
                consumer.close()

    def read(self, now, current):
        """KEDA's scaler: (metric, its inputs as text, the sample's own fields). Raises for a
        failed read."""
        partitions = self.offsets()
        metric, active, lag, with_lag = self.lag.read(partitions)
        if self.observer:
            self.observer(partitions, now, current)
        return (metric, f"lag={lag} partitions_with_lag={with_lag} active={active}",
                {"lag": lag, "committed": sum(c or 0 for c, _ in partitions.values()),
                 "freshness": self.freshness(partitions)})

    def freshness(self, partitions):
        """The age in seconds of the oldest event the group has not committed: the broker's
        timestamp of the event at each lagging partition's committed offset (read by a second
        client that joins no group and commits nothing); 0 when nothing lags. Not something KEDA
        reads: the picture's measure of how far behind the stored purchases are."""
        from confluent_kafka import Consumer, TopicPartition

        behind = {p: committed or 0 for p, (committed, end) in partitions.items() if end > (committed or 0)}
        if not behind:
            return 0.0
        if self._reader is None:
            self._reader = Consumer({"bootstrap.servers": self.fleet.bootstrap, "group.id": self.group + "-freshness",
                                     "enable.auto.commit": False, "enable.partition.eof": False})
        self._reader.assign([TopicPartition(self.topic, p, offset) for p, offset in behind.items()])
        oldest, seen, deadline = None, set(), time.monotonic() + 5
        while len(seen) < len(behind) and time.monotonic() < deadline:
            for message in self._reader.consume(num_messages=len(behind), timeout=1):
                if message.error() or message.partition() in seen:
                    continue
                seen.add(message.partition())
                self._reader.pause([TopicPartition(self.topic, message.partition())])
                created = message.timestamp()[1] / 1000
                oldest = created if oldest is None else min(oldest, created)
        self._reader.resume([TopicPartition(self.topic, p) for p in seen])
        self._reader.unassign()
        return max(0.0, time.time() - oldest) if oldest is not None else None

    def scale(self, wanted):
        """Starts replicas, or stops the newest (one at a time, waiting for each to exit)."""
        while len(self.fleet.replicas(self.service)) < wanted and not self._stop.is_set():
            self.fleet.add_replica(self.service, wait=False)
        while len(self.fleet.replicas(self.service)) > wanted and not self._stop.is_set():
            number = self.removal_signals.pop(0) if self.removal_signals else signal.SIGTERM
            name = [n for n in self.fleet.replicas(self.service) if n != self.service][-1]
            self.removed.append(self.removal(
                name, number, lambda: self.fleet.remove_replica(self.service, self.grace, number)))

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic() - self.started
            current = len(self.fleet.replicas(self.service))
            try:
                metric, inputs, fields = self.read(now, current)
            except Exception as error:  # the broker or Prometheus unreachable: KEDA's failed read
                metric, inputs, fields = None, f"read failed: {error}", {}
            wanted, reason = self.scaler.decide(now, current, metric)
            self.samples.append(dict(fields, t=now, replicas=current, wanted=wanted, metric=metric))
            self.log(f"autoscaler t={now:.1f}s {inputs} metric={metric} replicas={current} -> {wanted}: {reason}")
            self.scale(wanted)
            if wanted != self.sequence[-1]:
                self.sequence.append(wanted)
            # The polling interval is the controller's own period (a schedule, not a wait for a
            # condition): KEDA polls on a timer too.
            self._stop.wait(max(0.0, self.spec.polling_interval - (time.monotonic() - self.started - now)))


class PrometheusController(Controller):
    """cm-server's ScaledObject applied to the fleet's cm-server replicas: every polling interval
    the trigger's own query is evaluated by the fleet's Prometheus (in place of the chart's
    serverAddress, a cluster address) as KEDA's Prometheus scaler evaluates it; a replica starts,
    joins the ingress's endpoints once ready, and leaves them when stopped, with the chart's
    preStop pause and grace period. Stopping runs beside the controller (a terminating pod no
    longer counts as a replica; the HPA does not wait for it)."""

    service = "cm-server"

    def __init__(self, fleet, spec, grace=30, pre_stop=0, log=print):
        import threading

        assert spec.trigger == "prometheus", spec.trigger
        super().__init__(fleet, spec, None, None, grace, log)
        self.pre_stop = pre_stop
        self._stopping = []
        self._lock = threading.Lock()

    def read(self, now, current):
        import json
        import urllib.parse
        import urllib.request

        url = f"{self.fleet.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": self.spec.query})
        with urllib.request.urlopen(url, timeout=10) as answer:
            value, active = prometheus_value(self.spec, json.load(answer))
        return value, f"query={value:g} active={active}", {}

    def scale(self, wanted):
        import threading

        while len(self.fleet.replicas(self.service)) < wanted and not self._stop.is_set():
            self.fleet.add_replica(self.service)
        while len(self.fleet.replicas(self.service)) > wanted and not self._stop.is_set():
            name = [n for n in self.fleet.replicas(self.service) if n != self.service][-1]

            # It no longer counts once its deletion started.
            self.fleet.begin_termination(name)

            def stop(name=name):
                status = self.fleet.finish_termination(name, self.grace, self.pre_stop)
                with self._lock:
                    self.removed.append((name, status))

            self._stopping.append(threading.Thread(target=stop, name=f"terminate-{name}"))
            self._stopping[-1].start()

    def stop(self):
        super().stop()
        for thread in self._stopping:
            thread.join()
