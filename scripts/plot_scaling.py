"""Draws a scaling scenario from its own samples (make scale-test writes them with SCALE_SAMPLES):
the lag the autoscaler read, the replicas it ran (ending where its last decision left them), the
ingest rate (committed offsets per second of the consumer group) and the freshness (the age of the
oldest event not yet committed), over the scenario's time in the cluster's seconds (the run's
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
    samples = [s for s in run["samples"] if s.get("lag") is not None]
    seconds = [s["t"] * compression for s in samples]
    rates = [0.0] + [(b["committed"] - a["committed"]) / (b["t"] - a["t"]) for a, b in zip(samples, samples[1:])]
    figure, (lag, replicas, ingest, freshness) = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    figure.suptitle(run["line"], fontsize=8)
    lag.plot(seconds, [s["lag"] for s in samples], color="tab:red")
    lag.axhline(run["lag_threshold"], color="grey", linestyle=":", label="lagThreshold per replica")
    lag.set_ylabel("lag (events)")
    lag.legend(fontsize=8)
    # The replicas running at each poll, then where the last decision left them.
    running = [s["replicas"] for s in samples] + [samples[-1]["wanted"]]
    replicas.step(seconds + [seconds[-1]], running, where="post", color="tab:blue")
    replicas.set_ylabel("cm-api replicas")
    replicas.set_ylim(0, max(running) + 1)
    ingest.plot(seconds, rates, color="tab:green")
    ingest.set_ylabel("ingest (events/s, run time)")
    freshness.plot(seconds, [s.get("freshness") for s in samples], color="tab:purple")
    freshness.set_ylabel("oldest uncommitted\nevent (s, run time)")
    freshness.set_xlabel(f"cluster seconds (run seconds x {compression:g})")
    figure.tight_layout()
    figure.savefig(target, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
