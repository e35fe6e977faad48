"""The scaling scenarios (scale_scenarios.py) on a fleet without authentication (the load and the
accounting talk to the services directly), lagThreshold 500. make test runs the burst, time
compressed twentyfold; make scale-test (SCALE_FULL=1) runs every scenario, compressed tenfold."""

import os
import sys
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import scale_scenarios  # noqa: E402
from fleet import Fleet  # noqa: E402


class Burst(unittest.TestCase):
    def test_a_burst_scales_out_drains_and_scales_back_with_nothing_lost(self):
        # The load's keep-alive connections are closed when their threads are collected.
        warnings.simplefilter("ignore", ResourceWarning)
        fleet = Fleet(servers=1, apis=2, auth=False,
                      bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"))
        self.addCleanup(fleet.stop)
        fleet.start()
        log = []
        accounting, controller = scale_scenarios.burst(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "20")),
            seconds=float(os.environ.get("SCALE_BURST_SECONDS", "8")), log=log.append)
        print("\n  " + scale_scenarios.line("burst", accounting, controller))
        # The run's own samples, for the picture (scripts/plot_scaling.py).
        if os.environ.get("SCALE_SAMPLES"):
            scale_scenarios.save_samples(os.environ["SCALE_SAMPLES"], "burst", accounting, controller)
        self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
        self.assertTrue(accounting.scaled_out and accounting.drained and accounting.back, "\n".join(log[-60:]))
        self.assertGreater(max(controller.sequence), 2)
        self.assertEqual(controller.sequence[0], 2)
        self.assertEqual(controller.sequence[-1], 2)


@unittest.skipUnless(os.environ.get("SCALE_FULL"), "make scale-test only (about 4 minutes)")
class MongoDBDown(unittest.TestCase):
    def test_lag_no_replica_can_drain_adds_none_and_nothing_is_lost(self):
        warnings.simplefilter("ignore", ResourceWarning)
        fleet = Fleet(servers=1, apis=2, auth=False,
                      bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"))
        self.addCleanup(fleet.stop)
        fleet.start()
        log = []
        accounting, controller, shadow = scale_scenarios.mongodb_down(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "20")), log=log.append)
        print("\n  " + scale_scenarios.line("mongodb-down", accounting, controller)
              + f" held={','.join(map(str, accounting.held))} shadow={','.join(map(str, shadow))}")
        self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
        self.assertEqual(accounting.held, [2], "the chart's autoscaler added replicas that cannot help:\n"
                         + "\n".join(log[-40:]))
        self.assertGreater(max(shadow), 2, "without excludePersistentLag KEDA would have scaled out:\n"
                           + "\n".join(log[-40:]))
        self.assertTrue(accounting.drained, "\n".join(log[-40:]))


@unittest.skipUnless(os.environ.get("SCALE_FULL"), "make scale-test only (about a minute)")
class SigkillDuringScaleIn(unittest.TestCase):
    def test_a_replica_killed_while_scaling_in_loses_nothing(self):
        warnings.simplefilter("ignore", ResourceWarning)
        fleet = Fleet(servers=1, apis=2, auth=False,
                      bin_dir=os.environ.get("BIN_DIR") or os.path.join(ROOT, ".build", "debug"))
        self.addCleanup(fleet.stop)
        fleet.start()
        log = []
        accounting, controller = scale_scenarios.sigkill_during_scale_in(
            fleet, compression=float(os.environ.get("SCALE_COMPRESSION", "20")), log=log.append)
        print("\n  " + scale_scenarios.line("sigkill-scale-in", accounting, controller)
              + f" exits={[status for _, status in controller.removed]} in_hand_at_kill={accounting.killed_in_hand}")
        self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
        self.assertTrue(accounting.back, "\n".join(log[-40:]))
        self.assertEqual([status for _, status in controller.removed], [-9, 0], "one killed, one stopped")
        self.assertEqual(controller.sequence, [4, 3, 2])
        self.assertTrue(accounting.killed_in_hand and accounting.killed_in_hand[0] > 0,
                        "the kill was not mid-batch")


if __name__ == "__main__":
    unittest.main()
