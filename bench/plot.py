"""``bench plot run.json --out run.png``: two panels from one results document.

Top: the latency percentile spectrum (HdrHistogram style), x = percentile on a log
``1/(1-q)`` axis labelled 50 %, 90 %, 99 %, 99.9 % …, y = microseconds (log), for latency,
service time and send lag. Bottom: throughput (responses per second) and p99 latency per
second of the run. matplotlib is imported only when a plot is drawn (Agg backend, no
display needed); :func:`spectrum` is pure and tested on its own.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results
from bench.histogram import Histogram


def spectrum(histogram: Histogram, points_per_decade: int = 20) -> list[tuple[float, float]]:
    """(percentile, µs) pairs from p0 up to the last percentile the sample size resolves.

    Points are evenly spaced in ``log10(1/(1-q))``, ending at ``1 - 1/count`` (the rank of
    the maximum), so a run of N requests plots about ``log10(N)`` nines.
    """
    total = histogram.total
    if total == 0:
        return []
    decades = max(0.0, math.log10(total))
    steps = max(1, round(decades * points_per_decade))
    qs = [100.0 * (1 - 10 ** (-decades * i / steps)) for i in range(steps + 1)]
    qs = [min(100.0, round(q, 10)) for q in qs]
    values = histogram.percentiles(qs)
    return [(q, values[q] / 1000) for q in qs]


def draw(doc: dict[str, Any], out: Path) -> None:
    """Render the two panels of *doc* to the PNG file *out*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9))
    nines = 0
    for label, key in (
        ("latency", "latency"),
        ("service time", "service_time"),
        ("send lag", "send_lag"),
    ):
        points = spectrum(Histogram.from_dict(doc["histograms"][key]))
        points = [(q, max(v, 1e-3)) for q, v in points if q < 100]
        if points:
            top.plot([1 / (1 - q / 100) for q, _ in points], [v for _, v in points], label=label)
            nines = max(nines, round(math.log10(1 / (1 - points[-1][0] / 100))))
    top.set_xscale("log")
    top.set_yscale("log")
    ticks = [10**k for k in range(nines + 1)]
    top.set_xticks(ticks, [_nines_label(k) for k in range(nines + 1)])
    top.set_xlabel("percentile")
    top.set_ylabel("µs")
    rate = "max" if doc["intended_rps"] is None else f"{doc['intended_rps']:g} rps"
    top.set_title(f"{doc['mode']} at {rate}: achieved {doc['achieved_rps']:.0f} rps")
    top.grid(True, which="both", alpha=0.3)
    top.legend()

    timeline = [t for t in doc["timeline"] if not t.get("partial")]
    seconds = [t["second"] + 1 for t in timeline]
    bottom.plot(seconds, [t["completed"] for t in timeline], color="tab:blue", label="rps")
    bottom.set_xlabel("second")
    bottom.set_ylabel("responses / s", color="tab:blue")
    right = bottom.twinx()
    right.plot(seconds, [t["p99_us"] for t in timeline], color="tab:red", label="p99")
    right.set_ylabel("p99 latency µs", color="tab:red")
    bottom.set_title("throughput and p99 per second")
    bottom.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def _nines_label(k: int) -> str:
    return "0%" if k == 0 else f"{100 - 100 / 10**k:g}%"


@dataclass(frozen=True)
class PlotOptions:
    """``bench plot`` arguments."""

    path: Path
    out: Path


def run_plot(options: PlotOptions) -> int:
    """Draw the plot; 0, or 2 if the results file cannot be read."""
    try:
        doc = results.load(options.path)
    except results.ResultsError as err:
        print(f"bench plot: {err}", file=sys.stderr)
        return 2
    draw(doc, options.out)
    print(f"plot written to {options.out}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench plot``."""
    parser = sub.add_parser("plot", help="percentile spectrum and timeline as a PNG")
    parser.add_argument("path", type=Path)
    parser.add_argument("--out", type=Path, default=Path("run.png"))
    parser.set_defaults(handler=lambda ns: run_plot(PlotOptions(ns.path, ns.out)))
