"""The scaling scenarios (scaling.py) on a fleet without authentication (the load and the
accounting talk to the services directly), lagThreshold 500. make test runs the burst, time
compressed twentyfold; make scale-test (SCALE_FULL=1) runs every scenario, compressed tenfold."""

import os
import unittest
import warnings

from shoptest import ROOT, scaling
from shoptest.fleet import Fleet


def start_fleet(test, servers=1, apis=2):
    """A fleet without authentication for `test`, stopped when it ends. Its ingress has no
    per-client limits: the load comes from one address, a shop's customers from many (with the
    chart's 20 connections per address, a replica's slow first purchases made the ingress answer
    503 to the single load generator)."""
    # The load's keep-alive connections are closed when their threads are collected.
    warnings.simplefilter("ignore", ResourceWarning)
    fleet = Fleet(servers=servers, apis=apis, auth=False,
                  chart_values={"ingress": {"limits": {"connections": 0, "rps": 0}}},
                  bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"))
    test.addCleanup(fleet.stop)
    return fleet.start()


class Burst(unittest.TestCase):
    def test_a_burst_scales_out_drains_and_scales_back_with_nothing_lost(self):
        fleet = start_fleet(self)
        log = []
        # 5 s at 400/s: a lag of about 2,000, scaling out to 4-5 replicas at lagThreshold 500 and
        # back one per period (8 s went to 6, and the test took 104 s against 83); make scale-test
        # bursts for 30 s.
        seconds = float(os.environ.get("SCALE_BURST_SECONDS", "5"))
        accounting, controller = scaling.burst(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "20")), seconds=seconds, log=log.append)
        print("\n  " + scaling.line("burst", accounting, controller))
        # The run's own samples, for the picture (scripts/plot_scaling.py).
        if os.environ.get("SCALE_SAMPLES"):
            scaling.save_samples(os.environ["SCALE_SAMPLES"], "burst", accounting, controller)
        self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
        self.assertTrue(accounting.scaled_out and accounting.drained and accounting.back, "\n".join(log[-60:]))
        self.assertGreater(max(controller.sequence), 2)
        self.assertEqual(controller.sequence[0], 2)
        self.assertEqual(controller.sequence[-1], 2)
        # Freshness: the first purchase of the burst waited at least the burst's length; at the end
        # nothing waits.
        freshness = [sample["freshness"] for sample in controller.samples if sample.get("freshness") is not None]
        self.assertGreaterEqual(max(freshness), seconds, freshness)
        self.assertEqual(controller.samples[-1]["freshness"], 0)


@unittest.skipUnless(os.environ.get("SCALE_FULL"), "make scale-test only (about 4 minutes)")
class MongoDBDown(unittest.TestCase):
    def test_lag_no_replica_can_drain_adds_none_and_nothing_is_lost(self):
        fleet = start_fleet(self)
        log = []
        accounting, controller, shadow = scaling.mongodb_down(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "20")), log=log.append)
        print("\n  " + scaling.line("mongodb-down", accounting, controller)
              + f" held={','.join(map(str, accounting.held))} shadow={','.join(map(str, shadow))}")
        self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
        self.assertEqual(accounting.held, [2], "the chart's autoscaler added replicas that cannot help:\n"
                         + "\n".join(log[-40:]))
        self.assertGreater(max(shadow), 2, "without excludePersistentLag KEDA would have scaled out:\n"
                           + "\n".join(log[-40:]))
        self.assertTrue(accounting.drained and accounting.back, "\n".join(log[-40:]))
        self.assertEqual(controller.sequence[-1], 2)


@unittest.skipUnless(os.environ.get("SCALE_FULL"), "make scale-test only (about a minute)")
class SigkillDuringScaleIn(unittest.TestCase):
    def test_a_replica_killed_while_scaling_in_loses_nothing(self):
        fleet = start_fleet(self)
        log = []
        accounting, controller = scaling.sigkill_during_scale_in(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "20")), log=log.append)
        print("\n  " + scaling.line("sigkill-scale-in", accounting, controller)
              + f" exits={[status for _, status in controller.removed]} in_hand_at_kill={accounting[0].killed_in_hand}")
        for each in accounting:
            self.assertEqual(each.problems, [], "\n".join(log[-40:]))
        self.assertTrue(accounting[0].back, "\n".join(log[-40:]))
        self.assertEqual([status for _, status in controller.removed], [-9, 0], "one killed, one stopped")
        self.assertEqual(controller.sequence, [2, 4, 3, 2])
        self.assertTrue(accounting[0].killed_in_hand and accounting[0].killed_in_hand[0] > 0,
                        "the kill was not mid-batch")


class RollingRestart(unittest.TestCase):
    def test_every_cm_server_replaced_under_load_behind_nginx_without_an_error(self):
        fleet = start_fleet(self, servers=2, apis=1)
        log = []
        accounting, load, sequence, exits = scaling.rolling_restart(fleet, log=log.append)
        print("\n  " + scaling.line("rolling-restart", accounting, sequence=sequence)
              + f" statuses={load.statuses()} connection_failures={load.connection_failures} exits={exits}")
        self.assertEqual(accounting.problems, [], "\n".join(log))
        self.assertEqual(set(load.statuses()), {200}, "the client saw errors:\n" + "\n".join(log))
        self.assertEqual(load.connection_failures, 0)
        self.assertEqual([status for _, status in exits], [0, 0], "\n".join(log))
        self.assertEqual(sorted(name for name, _ in exits), ["cm-server", "cm-server-2"])
        self.assertEqual(sequence, [2, 3, 2, 3, 2])
        self.assertEqual(len(fleet.endpoints), 2)
        self.assertFalse(set(fleet.endpoints) & {"cm-server", "cm-server-2"})


@unittest.skipUnless(os.environ.get("SCALE_FULL"), "make scale-test only (about 3 minutes)")
class RequestRate(unittest.TestCase):
    def test_cm_server_scales_on_its_request_rate_and_back_without_an_error_at_the_client(self):
        fleet = start_fleet(self, servers=2, apis=1)
        log = []
        accountings, loads, controller = scaling.request_rate(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "10")), log=log.append)
        print("\n  " + scaling.line("request-rate", accountings, controller)
              + "".join(f" {load.run.split('-')[-1]}={load.statuses()}" for load in loads)
              + f" connection_failures={sum(load.connection_failures for load in loads)}")
        if os.environ.get("SCALE_LOG"):
            print("\n".join(log))
        for accounting, load in zip(accountings, loads):
            self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
            self.assertEqual(set(load.statuses()), {200}, "the client saw errors:\n" + "\n".join(log[-60:]))
            self.assertEqual(load.connection_failures, 0)
        self.assertTrue(accountings[0].scaled_out and accountings[0].back, "\n".join(log[-60:]))
        self.assertEqual(controller.sequence[0], 2)
        self.assertGreater(max(controller.sequence), 2)
        self.assertEqual(controller.sequence[-1], 2)
        self.assertEqual({status for _, status in controller.removed}, {0}, "\n".join(log[-40:]))
        self.assertFalse([line for line in log if "fallback" in line or "read failed" in line],
                         "every read of the query succeeded")


if __name__ == "__main__":
    unittest.main()
