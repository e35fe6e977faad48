"""Draws one purchase's spans as a waterfall (docs/OBSERVABILITY.md's picture).

    TRACE_DUMP=.build/trace.json make test-traces      # the trace test writes the spans it received
    python scripts/plot_trace.py .build/trace.json docs/purchase-trace.png

The spans are what system-tests/end-to-end/test_traces.py's independent OTLP receiver decoded for one
purchase: cm-server's SERVER and PRODUCER spans (the customer's trace), cm-api's CONSUMER batch span
(a trace of its own, linked to the PRODUCER span) and its MongoDB CLIENT span. Needs matplotlib
(requirements-plot.txt).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"cm-server": "#3b7dd8", "cm-api": "#d8843b"}


def main(source, target):
    with open(source) as f:
        spans = json.load(f)
    # Two traces joined by a link: each drawn from its own root's start, the batch's after the
    # purchase's with the real delay between them written on the link (it is mostly the batch
    # wait and the consumer's fetch, not work).
    roots = {span["trace_id"]: span for span in spans if span["parent"] == "" or span["kind"] == "server"}
    first = min(roots.values(), key=lambda span: span["start"])
    first_end = max((span["end"] - first["start"]) / 1e6 for span in spans if span["trace_id"] == first["trace_id"])
    gap = max(first_end * 0.25, 0.5)

    def offset(span):
        root = roots[span["trace_id"]]
        base = 0 if root is first else first_end + gap
        return base + (span["start"] - root["start"]) / 1e6

    figure, axes = plt.subplots(figsize=(10, 0.7 * len(spans) + 1.6))
    rows = {}
    for row, span in enumerate(spans):
        rows[span["span_id"]] = row
        start = offset(span)
        length = (span["end"] - span["start"]) / 1e6
        axes.barh(row, max(length, 0.02), left=start, color=COLOURS.get(span["service"], "grey"), height=0.5)
        axes.text(start, row - 0.38, f'{span["service"]}  {span["kind"].upper()}  {span["name"]}  ({length:.1f} ms)',
                  fontsize=8)
    for span in spans:
        for link in span["links"]:
            linked = next((s for s in spans if s["span_id"] == link["span_id"]), None)
            if linked is None:
                continue
            x_from, x_to = offset(linked) + (linked["end"] - linked["start"]) / 1e6, offset(span)
            axes.annotate("", xy=(x_to, rows[span["span_id"]]), xytext=(x_from, rows[linked["span_id"]]),
                          arrowprops={"arrowstyle": "->", "linestyle": "dashed", "color": "black"})
            delay = (span["start"] - linked["end"]) / 1e6
            axes.text((x_from + x_to) / 2, (rows[span["span_id"]] + rows[linked["span_id"]]) / 2,
                      f"link: the record's traceparent\n(batch began {delay:.0f} ms after the ack)", fontsize=7)
    axes.set_yticks([])
    axes.set_ylim(len(spans) - 0.5, -0.9)
    axes.set_xlabel("milliseconds from each trace's first span (the batch's trace drawn after the purchase's)")
    end = max(offset(span) + (span["end"] - span["start"]) / 1e6 for span in spans)
    axes.set_xlim(0, end * 1.05)
    axes.set_title("One purchase, two traces joined by a link (spans as the independent OTLP receiver got them)",
                   fontsize=10)
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
