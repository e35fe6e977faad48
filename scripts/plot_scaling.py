"""Draws a scaling scenario from its own samples (make scale-test writes them with SCALE_SAMPLES):
the lag the autoscaler read, the replicas it ran, and the ingest rate (committed offsets per
second of the consumer group), over the scenario's time in the cluster's seconds (the run's
seconds times the compression). matplotlib from PyPI, without a display.

    python scripts/plot_scaling.py SAMPLES.json OUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source, target):
    with open(source) as f:
        run = json.load(f)
    compression = run["compression"]
    samples = [s for s in run["samples"] if s[3] is not None]
    seconds = [s[0] * compression for s in samples]
    replicas = [s[1] for s in samples]
    lag = [s[3] for s in samples]
    rates = [0.0] + [(b[4] - a[4]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:])]
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    figure.suptitle(run["line"], fontsize=8)
    top.plot(seconds, lag, color="tab:red")
    top.axhline(run["lag_threshold"], color="grey", linestyle=":", label="lagThreshold per replica")
    top.set_ylabel("lag (events)")
    top.legend(fontsize=8)
    middle.step(seconds, replicas, where="post", color="tab:blue")
    middle.set_ylabel("cm-api replicas")
    middle.set_ylim(0, max(replicas) + 1)
    bottom.plot(seconds, rates, color="tab:green")
    bottom.set_ylabel("ingest (events/s, run time)")
    bottom.set_xlabel(f"cluster seconds (run seconds x {compression:g})")
    figure.tight_layout()
    figure.savefig(target, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
