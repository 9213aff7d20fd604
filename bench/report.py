"""``bench report run.json``: a results document as human-readable tables and one verdict.

The last line of the report is the run's verdict (:func:`verdict`): VALID, FAILED or
INVALID, with the reasons; ``bench run`` and ``bench quick`` end their output with it and
exit by it. Also the one-line-per-second progress format the load commands print while
running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
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


def duration_text(us: float) -> str:
    """``412 µs``, ``1.45 ms``, ``12.3 ms``, ``2.5 s``: a figure for a sentence (no padding)."""
    if us >= 1_000_000:
        return f"{us / 1_000_000:.3g} s"
    if us >= 1000:
        return f"{us / 1000:.3g} ms"
    return f"{us:.3g} µs"


def slo_text(slo: dict[str, Any]) -> str:
    """``p99 ≤ 1 ms`` for one entry of a document's ``slos``."""
    name = "max" if slo["percentile"] >= 100 else f"p{slo['percentile']:g}"
    return f"{name} ≤ {duration_text(slo['limit_us'])}"


def slo_outcome(slo: dict[str, Any]) -> str:
    """``met (412 µs)`` or ``missed (3.2 ms)``."""
    if slo["observed_us"] is None:
        return "not measured"
    return f"{'met' if slo['met'] else 'missed'} ({duration_text(slo['observed_us'])})"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Rows under a header, columns as wide as their widest cell, two spaces apart.

    *align* has one letter per column: ``l`` for names, ``r`` for figures, so a long
    verdict name widens its column instead of pushing its row's figures out of line.
    """
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if how == "l" else cell.rjust(width)
            for cell, width, how in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in (header, *rows)
    ]


def status(doc: dict[str, Any]) -> str:
    """``INVALID``, ``FAILED`` or ``VALID``: the first word of :func:`verdict`."""
    if not doc["valid"]:
        return "INVALID"
    return "FAILED" if doc["requests"]["mismatches"] or doc["requests"]["errors"] else "VALID"


def verdict(doc: dict[str, Any]) -> tuple[bool, str]:
    """(passed, the one line that says so): the last line of every run's output.

    INVALID when the run is not a measurement at its intended rate, FAILED when a valid
    run had errors or answers the oracle did not expect, else VALID with the SLO outcome.
    An SLO miss is reported, not failed: it is a true figure for a slow service.
    """
    req = doc["requests"]
    counts = (
        f"{req['completed']} responses, {req['mismatches']} oracle mismatches,"
        f" {req['errors']} errors"
    )
    word = status(doc)
    if word == "INVALID":
        return False, f"INVALID: {'; '.join(doc['invalid_reasons'])} ({counts}; SLO not judged)."
    if word == "FAILED":
        return False, f"FAILED: {counts}."
    slos = doc.get("slos") or []
    judged = ", ".join(f"{slo_text(s)} {slo_outcome(s)}" for s in slos) or "none given"
    return True, f"VALID: {counts}; SLO {judged}."


def render(doc: dict[str, Any], *extra: str) -> str:
    """The tables for one results document, then the ``extra`` lines, ending with the
    :func:`verdict` line."""
    s, req = doc["settings"], doc["requests"]
    rate = "max" if doc["intended_rps"] is None else f"{doc['intended_rps']:g} rps"
    lines = [
        f"bench {doc['kind']}: {s['target']}  ({doc['mode']}, {rate}, {s['duration_s']:g} s,"
        f" {s['connections']} connections, {s['processes']} process(es))",
        f"code {results.code_version(doc.get('provenance') or {})}",
        f"achieved_rps {doc['achieved_rps']:.1f}   sent {req['sent']}   completed"
        f" {req['completed']}   errors {req['errors']}   mismatches {req['mismatches']}"
        f"   not sent {req['not_sent']}   waited for a connection {req['waited_for_connection']}",
        "",
        *latency_table(doc),
    ]
    if doc["verdicts"]:
        lines += ["", "latency per verdict", *verdict_table(doc)]
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
    if doc.get("slos"):
        lines += ["", "latency objectives", *slo_table(doc)]
    return "\n".join([*lines, *extra, "", verdict(doc)[1]])


def latency_table(doc: dict[str, Any]) -> list[str]:
    """Percentiles of latency, service time and send lag, one row each."""
    rows = [
        (label, *(_fmt(doc[key][c]).strip() for c in _COLUMNS))
        for label, key in (
            ("latency", "latency_us"),
            ("service time", "service_time_us"),
            ("send lag", "send_lag_us"),
        )
        if doc[key]["count"]
    ]
    return table(("", *_COLUMNS), rows, "l" + "r" * len(_COLUMNS))


def verdict_table(doc: dict[str, Any]) -> list[str]:
    """Count and latency per (expected, actual) verdict pair; ✗ marks a mismatch."""
    rows = [
        (
            v["expected"],
            v["actual"],
            str(v["count"]),
            *(_fmt(v["latency_us"][c]).strip() for c in ("p50", "p99", "max")),
            "" if v["expected"] == v["actual"] else "✗",
        )
        for v in doc["verdicts"]
    ]
    return table(("expected", "actual", "count", "p50", "p99", "max", ""), rows, "llrrrrl")


def slo_table(doc: dict[str, Any]) -> list[str]:
    """Each objective, the observed figure, and met / missed (not judged if invalid)."""
    rows = [
        (
            slo_text(o),
            "—" if o["observed_us"] is None else duration_text(o["observed_us"]),
            ("met" if o["met"] else "missed") if doc["valid"] else "not judged",
        )
        for o in doc["slos"]
    ]
    return table(("objective", "observed", ""), rows, "lrl")


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
