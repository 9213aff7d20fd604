"""``bench report run.json``: a results document as a human-readable table.

Also the one-line-per-second progress format the load commands print while running.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results
from bench.shard import SecondStats

_COLUMNS = ("p50", "p90", "p99", "p99.9", "p99.99", "max")


def progress_line(stats: SecondStats) -> str:
    """``[   3s]  20001 rps  p50 …  p99 …  max …  errors 0  mismatches 0`` for one second.

    With several processes the percentiles are the worst process's (marked ``≤``: an
    upper bound on the merged figure, which the results file has exactly).
    """
    le = "≤" if stats.processes > 1 else " "
    return (
        f"[{stats.second + 1:>4}s] {stats.completed:>8} rps  p50{le}{_fmt(stats.p50_ns / 1e3)}"
        f"  p99{le}{_fmt(stats.p99_ns / 1e3)}  max {_fmt(stats.max_ns / 1e3)}"
        f"  errors {stats.errors}  mismatches {stats.mismatches}"
    )


def print_progress(stats: SecondStats) -> None:
    """Write :func:`progress_line` to stderr (stdout stays free for reports)."""
    print(progress_line(stats), file=sys.stderr, flush=True)


def _fmt(us: float) -> str:
    """Microseconds with a unit that keeps 3-4 significant digits."""
    if us >= 10_000:
        return f"{us / 1000:7.1f}ms"
    if us >= 1000:
        return f"{us / 1000:7.2f}ms"
    return f"{us:7.1f}µs"


def render(doc: dict[str, Any]) -> str:
    """The table for one results document."""
    s, req = doc["settings"], doc["requests"]
    rate = "max" if doc["intended_rps"] is None else f"{doc['intended_rps']:g} rps"
    lines = [
        f"bench {doc['kind']}: {s['target']}  ({doc['mode']}, {rate}, {s['duration_s']:g} s,"
        f" {s['connections']} connections, {s['processes']} process(es))",
        "VALID" if doc["valid"] else "INVALID: " + "; ".join(doc["invalid_reasons"]),
        f"achieved_rps {doc['achieved_rps']:.1f}   sent {req['sent']}   completed"
        f" {req['completed']}   errors {req['errors']}   mismatches {req['mismatches']}"
        f"   not sent {req['not_sent']}   waited for a connection {req['waited_for_connection']}",
        "",
        f"{'':16}" + "".join(f"{c:>11}" for c in _COLUMNS),
    ]
    for label, key in (
        ("latency", "latency_us"),
        ("service time", "service_time_us"),
        ("send lag", "send_lag_us"),
    ):
        row = doc[key]
        if row["count"]:
            lines.append(f"{label:16}" + "".join(f"{_fmt(row[c]):>11}" for c in _COLUMNS))
    if doc["verdicts"]:
        lines += ["", "latency per verdict (expected → actual)"]
        for v in doc["verdicts"]:
            mark = "" if v["expected"] == v["actual"] else "  ✗"
            pair = f"{v['expected']} → {v['actual']}"
            cells = "".join(f"{_fmt(v['latency_us'][c]):>11}" for c in ("p50", "p99", "max"))
            lines.append(f"  {pair:32}{v['count']:>9}{cells}{mark}")
    for example in doc["mismatch_examples"]:
        lines.append(
            f"  mismatch #{example['index']}: expected {example['expected']!r},"
            f" got {example['actual']!r}: {example['response'][:120]!r}"
        )
    for error in doc["error_examples"]:
        lines.append(f"  error: {error}")
    gen = doc["generator"]
    if gen.get("cpu_us_per_request") is not None:
        lines.append(
            f"\ngenerator CPU {gen['cpu_s']:.2f} s, {gen['cpu_us_per_request']} µs/request"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportOptions:
    """``bench report`` arguments."""

    path: Path


def report(options: ReportOptions) -> int:
    """Print the table for the results file; 0, or 2 if it cannot be read."""
    try:
        doc = results.load(options.path)
    except results.ResultsError as err:
        print(f"bench report: {err}", file=sys.stderr)
        return 2
    print(render(doc))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench report``."""
    parser = sub.add_parser("report", help="print a results file as a table")
    parser.add_argument("path", type=Path)
    parser.set_defaults(handler=lambda ns: report(ReportOptions(ns.path)))
