"""The autoscaler's decision model (shoptest/autoscaler.py) against KEDA's and the HPA's
documented behaviour, with the charts' own rendered ScaledObjects (no processes; a second)."""

import unittest

from shoptest.autoscaler import Autoscaler, KafkaLag, ScalingSpec, prometheus_value
from shoptest.charts import of_kind, render


def chart_spec(values=None, compression=1.0):
    return ScalingSpec.from_scaled_object(of_kind(render("cm-api", values or {}), "ScaledObject")[0], compression)


class SpecFromTheChart(unittest.TestCase):
    def test_every_parameter_comes_from_the_rendered_scaled_object(self):
        spec = chart_spec(compression=10)
        self.assertEqual((spec.min_replicas, spec.max_replicas, spec.lag_threshold), (2, 12, 5000))
        self.assertEqual((spec.offset_reset_policy, spec.allow_idle_consumers, spec.activation_threshold),
                         ("earliest", False, 0))
        self.assertTrue(spec.exclude_persistent_lag, "lag that cannot drain adds no replicas (docs/SCALING.md)")
        self.assertEqual((spec.fallback_failures, spec.fallback_replicas, spec.fallback_behavior),
                         (3, 4, "currentReplicasIfHigher"))
        # Times compressed tenfold: 15 s polling, 300 s scale-down window, 120 s per removed pod.
        self.assertEqual((spec.polling_interval, spec.down.window, spec.up.window), (1.5, 30, 0))
        self.assertEqual([(p.kind, p.value, p.period) for p in spec.down.policies], [("Pods", 1, 12)])
        self.assertEqual(sorted((p.kind, p.value) for p in spec.up.policies), [("Percent", 100), ("Pods", 4)])


def server_spec(values=None, compression=1.0):
    values = {"autoscaling": dict({"enabled": True, "type": "keda"}, **(values or {}))}
    return ScalingSpec.from_scaled_object(of_kind(render("cm-server", values), "ScaledObject")[0], compression)


def vector(*values):
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [1.0, v]} for v in values]}}


class PrometheusScaler(unittest.TestCase):
    def test_the_cm_server_trigger_comes_from_its_rendered_scaled_object(self):
        spec = server_spec({"keda": {"threshold": "25"}}, compression=5)
        self.assertEqual((spec.trigger, spec.target, spec.min_replicas, spec.max_replicas), ("prometheus", 25, 2, 10))
        self.assertIn("http_requests_total", spec.query)
        self.assertFalse(spec.ignore_null_values, "no data must not read as 0")
        self.assertEqual((spec.polling_interval, spec.down.window), (3, 60))

    def test_one_series_is_the_metric(self):
        self.assertEqual(prometheus_value(server_spec(), vector("120.5")), (120.5, True))
        self.assertEqual(prometheus_value(server_spec(), vector("0")), (0, False))
        scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}}
        self.assertEqual(prometheus_value(server_spec(), scalar), (7, True))

    def test_no_data_is_a_failed_read_with_the_chart_and_zero_with_keda_s_default(self):
        spec = server_spec()
        for answer in (vector(), vector("NaN"), vector("+Inf")):
            with self.assertRaises(ValueError):
                prometheus_value(spec, answer)
        spec.ignore_null_values = True
        for answer in (vector(), vector("NaN"), vector("+Inf")):
            self.assertEqual(prometheus_value(spec, answer), (0, False))

    def test_more_than_one_series_is_always_a_failed_read(self):
        spec = server_spec()
        spec.ignore_null_values = True
        with self.assertRaises(ValueError):
            prometheus_value(spec, vector("1", "2"))

    def test_three_failed_reads_keep_the_replicas_when_higher(self):
        scaler = Autoscaler(server_spec())
        decisions = [scaler.decide(t, 5, None)[0] for t in range(3)]
        self.assertEqual(decisions, [5, 5, 5])
        self.assertIn("fallback", scaler.decide(3, 5, None)[1])

    def test_the_rate_per_replica_decides_with_the_tolerance(self):
        scaler = Autoscaler(server_spec({"keda": {"threshold": "20"}}))
        self.assertEqual(scaler.decide(0, 2, 42.0)[0], 2, "within 10 % of 2 x 20/s: stays")
        self.assertEqual(scaler.decide(1, 2, 50.0)[0], 3, "50/s at 20/s a replica: 3")
        self.assertEqual(scaler.decide(2, 3, 62.0)[0], 3, "within 10 % of 3 x 20/s: stays")


class KafkaScaler(unittest.TestCase):
    def test_a_new_group_with_earliest_counts_every_event_and_is_capped_at_the_partitions(self):
        lag = KafkaLag(chart_spec())
        metric, active, _, _ = lag.read({p: (None, 20_000) for p in range(6)})
        self.assertTrue(active)
        self.assertEqual(metric, 6 * 5000, "allowIdleConsumers false: at most one replica per partition")
        metric, active, _, _ = lag.read({p: (100, 100) for p in range(6)})
        self.assertEqual((metric, active), (0, False))

    def test_exclude_persistent_lag_drops_a_stuck_partition_from_the_metric_not_from_activity(self):
        lag = KafkaLag(chart_spec())
        stuck = {0: (10, 9_000), 1: (50, 60)}
        self.assertEqual(lag.read(stuck)[0], 9_000)  # first sight: counted
        metric, active, with_persistent, _ = lag.read(stuck)  # nothing moved: excluded
        self.assertEqual((metric, active, with_persistent), (0, True, 9_000))
        self.assertEqual(lag.read({0: (11, 9_000), 1: (60, 60)})[0], 8_989)  # moving again: counted

    def test_limit_to_partitions_with_lag_bounds_the_metric_by_them(self):
        spec = chart_spec()
        spec.limit_to_partitions_with_lag = True
        metric, _, _, with_lag = KafkaLag(spec).read({0: (0, 50_000), 1: (5, 5), 2: (0, 1)})
        self.assertEqual((metric, with_lag), (2 * 5000, 2))


class HorizontalPodAutoscaler(unittest.TestCase):
    def test_a_burst_scales_up_by_the_policies_and_down_after_the_window_one_pod_per_period(self):
        spec = chart_spec()
        scaler = Autoscaler(spec)
        steps, current, now = [], 2, 0.0
        # 60,000 events behind: raw 12; the first step is the larger of +100 % (4) and +4 pods (6).
        for metric in [60_000, 60_000, 60_000]:
            current, _ = scaler.decide(now, current, metric)
            steps.append(current)
            now += 15
        self.assertEqual(steps, [6, 12, 12])
        # Drained: the scale-down window holds 12 for 300 s, then one pod per 120 s.
        down = []
        for _ in range(120):  # 30 minutes: 300 s, then 10 removals 120 s apart
            current, _ = scaler.decide(now, current, 0)
            down.append((now, current))
            now += 15
        first = next(t for t, r in down if r < 12)
        self.assertGreaterEqual(first - 45, 300 - 15, down[:25])
        removals = [t for (t, r), (_, before) in zip(down[1:], down) if r < before]
        self.assertTrue(all(b - a >= 120 for a, b in zip(removals, removals[1:])), removals)
        self.assertEqual(down[-1][1], 2, "back at the minimum")

    def test_within_the_tolerance_nothing_changes(self):
        scaler = Autoscaler(chart_spec())
        self.assertEqual(scaler.decide(0, 2, 10_500)[0], 2)  # ratio 1.05
        self.assertEqual(scaler.decide(15, 2, 11_500)[0], 3)  # ratio 1.15

    def test_the_fallback_keeps_more_replicas_than_it_would_set(self):
        scaler = Autoscaler(chart_spec())
        self.assertEqual([scaler.decide(t, 8, None)[0] for t in (0, 15, 30)], [8, 8, 8])
        scaler = Autoscaler(chart_spec())
        self.assertEqual([scaler.decide(t, 2, None)[0] for t in (0, 15, 30)], [2, 2, 4])
        # The chart's fallback used to be a fixed count: with "static" 8 replicas would drop to 4.
        spec = chart_spec()
        spec.fallback_behavior = "static"
        self.assertEqual([Autoscaler(spec).decide(0, 8, None)[0]], [8])
        static = Autoscaler(spec)
        self.assertEqual([static.decide(t, 8, None)[0] for t in (0, 15, 30)][-1], 4)


if __name__ == "__main__":
    unittest.main()
