"""``bench plot run.json --out run.png``: one results document as a header and three panels.

Header: the verdict (VALID, FAILED, or INVALID with its reasons), the settings (target,
mode and rate, duration, connections), the SLO and whether it was met, and the code
version (package version, git commit). A plot seen without its report still says what was
measured, with what, and whether it can be trusted; an invalid run is also marked across
every panel. Panels: the latency percentile spectrum (HdrHistogram style: x = percentile
on a log ``1/(1-q)`` axis labelled 50 %, 90 %, 99 % …, y = latency, log) for latency,
service time and send lag, with the SLO drawn as the step it sets; responses per second
from zero, against the target rate; p99 latency per second from zero, with the p99 SLO.

matplotlib (the ``tools`` extra) is imported only when a plot is drawn (Agg backend, no
display needed); without it drawing raises :class:`PlotUnavailable`, which says how to
install it. :func:`spectrum`, :func:`header`, :func:`slo_steps` and
:func:`throughput_top` are pure and tested on their own.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import results
from bench.histogram import Histogram
from bench.report import duration_text, slo_outcome, slo_text, status

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_INSTALL = "pip install 'insurance-qr-verifier[tools]' (from a checkout: pip install -e '.[tools]')"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed, so no plot can be drawn; the message says how to get it."""


_COLOURS = {"VALID": "tab:green", "FAILED": "tab:orange", "INVALID": "tab:red"}


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


@dataclass(frozen=True)
class Header:
    """The text above the panels: a coloured title, then lines of detail."""

    status: str  # VALID | FAILED | INVALID
    title: str
    reasons: tuple[str, ...]  # why the run is invalid, wrapped; empty otherwise
    details: tuple[str, ...]  # settings, SLO, code version
    stressed: frozenset[int] = frozenset()  # details drawn in bold: a missed SLO


def header(doc: dict[str, Any], width: int = 120) -> Header:
    """What the plot of *doc* says about the run before any curve is read."""
    s, req = doc["settings"], doc["requests"]
    word = status(doc)
    rate = "max" if doc["intended_rps"] is None else f"{doc['intended_rps']:g} rps"
    counts = f"{req['completed']} responses, {req['mismatches']} oracle mismatches,"
    counts += f" {req['errors']} errors"
    title = {
        "VALID": f"VALID run — {counts}",
        "FAILED": f"FAILED run — {counts}",
        "INVALID": f"INVALID run — not a measurement at {rate}",
    }[word]
    reasons = tuple(
        line
        for why in doc["invalid_reasons"]
        for line in textwrap.wrap(why, width, initial_indent="• ", subsequent_indent="  ")
    )
    warmup = f" after {s['warmup_s']:g} s warm-up" if s.get("warmup_s") else ""
    target = f"target {s['target']}  ·  achieved {doc['achieved_rps']:.0f} rps"
    if word == "INVALID":
        target += f"  ·  {counts}"
    settings = (
        f"{doc['mode']} at {rate}  ·  {s['duration_s']:g} s measured{warmup}"
        f"  ·  {s['connections']} connections, {s['processes']} process(es)"
    )
    slos = doc.get("slos")
    if not slos:
        slo = "SLO: none recorded in this results file"
    elif word == "INVALID":
        slo = f"SLO {', '.join(map(slo_text, slos))}: not judged (invalid run)"
    else:
        slo = "SLO " + "  ·  ".join(f"{slo_text(o)}: {slo_outcome(o)}" for o in slos)
    prov = doc.get("provenance") or {}
    started = prov.get("started_at")
    when = ""
    if started is not None:
        when = f"  ·  started {datetime.fromtimestamp(started, UTC):%Y-%m-%d %H:%M} UTC"
    code = f"code {results.code_version(prov)}{when}  ·  bench {doc['kind']}"
    parts = [
        textwrap.wrap(t, width, subsequent_indent="    ") for t in (target, settings, slo, code)
    ]
    missed = word != "INVALID" and any(not o["met"] for o in slos or [])
    first = len(parts[0]) + len(parts[1])
    stressed = frozenset(range(first, first + len(parts[2])) if missed else ())
    return Header(word, title, reasons, tuple(line for part in parts for line in part), stressed)


def slo_steps(slos: list[dict[str, Any]], right: float) -> list[tuple[float, float]]:
    """The SLO as a step on the spectrum's x axis (``1/(1-q)``), up to x = *right*.

    Left of each objective's percentile the latency must be at most the smallest limit
    of that objective and every later one (the curve only rises); ``max`` sits at *right*.
    """
    ordered = sorted(slos, key=lambda o: o["percentile"])
    points: list[tuple[float, float]] = []
    x = 1.0
    for i, o in enumerate(ordered):
        limit = min(later["limit_us"] for later in ordered[i:])
        end = right if o["percentile"] >= 100 else 1 / (1 - o["percentile"] / 100)
        points += [(x, limit), (min(end, right), limit)]
        x = min(end, right)
    return points


def throughput_top(doc: dict[str, Any]) -> float:
    """Top of the throughput axis (its bottom is 0): room above the target and the peak."""
    peak = max((t["completed"] for t in doc["timeline"] if not t.get("partial")), default=0)
    return 1.15 * max(doc["intended_rps"] or 0.0, peak, 1.0)


def draw(doc: dict[str, Any], out: Path) -> None:
    """Render :func:`figure` of *doc* to the PNG file *out*."""
    drawn = figure(doc)
    import matplotlib.pyplot as plt

    drawn.savefig(out)
    plt.close(drawn)


def figure(doc: dict[str, Any]) -> Figure:
    """The header and three panels of *doc*, as a matplotlib figure (Agg backend)."""
    try:
        import matplotlib
    except ImportError as err:
        raise PlotUnavailable(f"matplotlib is not installed: {_INSTALL}") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head = header(doc)
    head_in = 0.7 + 0.25 * (len(head.reasons) + len(head.details))
    panels_in = 11.5
    drawn = plt.figure(figsize=(11, head_in + panels_in), dpi=100)
    share = head_in / (head_in + panels_in)
    _draw_header(drawn.add_axes((0.03, 1 - share, 0.94, share - 0.01)), head)
    grid = drawn.add_gridspec(
        3, 1, height_ratios=[5.0, 2.6, 2.6], hspace=0.45, top=1 - share - 0.035, bottom=0.05
    )
    spectrum_axes = drawn.add_subplot(grid[0])
    rate_axes = drawn.add_subplot(grid[1])
    p99_axes = drawn.add_subplot(grid[2], sharex=rate_axes)
    _draw_spectrum(spectrum_axes, doc)
    _draw_timeline(rate_axes, p99_axes, doc)
    if head.status == "INVALID":
        for axes in (spectrum_axes, rate_axes, p99_axes):
            axes.text(0.5, 0.5, "INVALID", transform=axes.transAxes, color="tab:red",
                      fontsize=80 if axes is spectrum_axes else 50, alpha=0.13, rotation=12,
                      ha="center", va="center", fontweight="bold", zorder=0)  # fmt: skip
    return drawn


def _draw_header(axes: Any, head: Header) -> None:
    axes.axis("off")
    colour = _COLOURS[head.status]
    axes.annotate(head.title, (0, 1), xycoords="axes fraction", va="top", fontsize=16,
                  fontweight="bold", color="white",
                  bbox={"boxstyle": "round,pad=0.35", "facecolor": colour, "edgecolor": colour})  # fmt: skip
    lines = [(r, colour, "normal") for r in head.reasons] + [
        (d, "black", "bold" if i in head.stressed else "normal") for i, d in enumerate(head.details)
    ]
    for n, (text, tint, weight) in enumerate(lines):
        axes.annotate(text, (0, 1), xycoords="axes fraction", xytext=(0, -34.0 - 17.0 * n),
                      textcoords="offset points", va="top", fontsize=10, color=tint,
                      fontweight=weight)  # fmt: skip


def _draw_spectrum(axes: Any, doc: dict[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter

    nines = 1
    for label, key in (
        ("latency", "latency"),
        ("service time", "service_time"),
        ("send lag", "send_lag"),
    ):
        points = spectrum(Histogram.from_dict(doc["histograms"][key]))
        points = [(q, max(v, 1e-3)) for q, v in points if q < 100]
        if points:
            axes.plot([1 / (1 - q / 100) for q, _ in points], [v for _, v in points], label=label)
            nines = max(nines, math.ceil(math.log10(1 / (1 - points[-1][0] / 100)) - 1e-9))
    slos = doc.get("slos") or []
    for o in slos:
        if o["percentile"] < 100:
            nines = max(nines, math.ceil(math.log10(1 / (1 - o["percentile"] / 100)) - 1e-9))
    right = 10.0**nines
    if slos:
        steps = slo_steps(slos, right)
        axes.plot([x for x, _ in steps], [y for _, y in steps], color="black", linestyle="--",
                  linewidth=1.2, label="SLO")  # fmt: skip
        for o in slos:
            x = right if o["percentile"] >= 100 else 1 / (1 - o["percentile"] / 100)
            axes.plot([x], [o["limit_us"]], marker="o", color="black")
            axes.annotate(slo_text(o), (x, o["limit_us"]), xytext=(-6, 6),
                          textcoords="offset points", ha="right", fontsize=9)  # fmt: skip
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(1, right)
    axes.set_xticks([10**k for k in range(nines + 1)], [_nines_label(k) for k in range(nines + 1)])
    axes.yaxis.set_major_formatter(FuncFormatter(lambda us, _: duration_text(us)))
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency")
    axes.set_title("latency by percentile (from each request's intended send time)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="best")


def _draw_timeline(rate_axes: Any, p99_axes: Any, doc: dict[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    timeline = [t for t in doc["timeline"] if not t.get("partial")]
    seconds = [t["second"] + 1 for t in timeline]
    rate_axes.plot(seconds, [t["completed"] for t in timeline], color="tab:blue", marker="o",
                   markersize=3, label="responses / s")  # fmt: skip
    if doc["intended_rps"] is not None:
        rate_axes.axhline(doc["intended_rps"], color="black", linestyle=":",
                          label=f"target {doc['intended_rps']:g} rps")  # fmt: skip
    rate_axes.set_ylim(0, throughput_top(doc))
    rate_axes.set_xlim(0.5, max(seconds, default=1) + 0.5)
    rate_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    rate_axes.set_ylabel("responses / s")
    rate_axes.set_title("throughput per second (from zero, against the target rate)")
    p99 = [t["p99_us"] for t in timeline]
    p99_axes.plot(seconds, p99, color="tab:red", marker="o", markersize=3, label="p99 latency")
    slo99 = [o["limit_us"] for o in doc.get("slos") or [] if o["percentile"] == 99]
    for limit in slo99:
        p99_axes.axhline(limit, color="black", linestyle="--", linewidth=1.2,
                         label=f"SLO p99 ≤ {duration_text(limit)}")  # fmt: skip
    p99_axes.set_ylim(0, 1.15 * max([*p99, *slo99, 1.0]))
    p99_axes.yaxis.set_major_formatter(FuncFormatter(lambda us, _: duration_text(us)))
    p99_axes.set_ylabel("p99 latency")
    p99_axes.set_xlabel("second of the measured window")
    p99_axes.set_title("p99 latency per second (from zero)")
    for axes in (rate_axes, p99_axes):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="best", fontsize=9)


def _nines_label(k: int) -> str:
    return "0%" if k == 0 else f"{100 - 100 / 10**k:g}%"


@dataclass(frozen=True)
class PlotOptions:
    """``bench plot`` arguments."""

    path: Path
    out: Path


def run_plot(options: PlotOptions) -> int:
    """Draw the plot; 0, or 2 if the results file cannot be read or matplotlib is missing."""
    try:
        draw(results.load(options.path), options.out)
    except (results.ResultsError, PlotUnavailable) as err:
        print(f"bench plot: {err}", file=sys.stderr)
        return 2
    print(f"plot written to {options.out}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench plot``."""
    parser = sub.add_parser("plot", help="percentile spectrum and timeline as a PNG")
    parser.add_argument("path", type=Path)
    parser.add_argument("--out", type=Path, default=Path("run.png"))
    parser.set_defaults(handler=lambda ns: run_plot(PlotOptions(ns.path, ns.out)))
