"""make test's short version of make scale-test: the burst scenario on a fleet without
authentication (the load and the accounting talk to the services directly), time compressed
twentyfold, lagThreshold 500 (scale_scenarios.py)."""

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
        self.assertEqual(accounting.problems, [], "\n".join(log[-40:]))
        self.assertTrue(accounting.scaled_out and accounting.drained and accounting.back, "\n".join(log[-60:]))
        self.assertGreater(max(controller.sequence), 2)
        self.assertEqual(controller.sequence[0], 2)
        self.assertEqual(controller.sequence[-1], 2)


if __name__ == "__main__":
    unittest.main()
