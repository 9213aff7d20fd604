"""``bench compare base.json new.json [--max-regression 10%]``: did *new* get worse?

Checked metrics: ``achieved_rps`` (lower is worse) and the latency percentiles p50, p99
and p99.9 (higher is worse). A metric regresses when it is worse than the base by more
than ``max_regression`` (a fraction). Only p99 and ``achieved_rps`` gate the exit code
(the others are shown for context); an invalid run on either side also fails the gate,
since its figures do not measure what they claim to.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results
from bench.args import parse_percent

#: (label, path into the document, True if higher is better, gates the exit code)
METRICS: tuple[tuple[str, tuple[str, ...], bool, bool], ...] = (
    ("achieved_rps", ("achieved_rps",), True, True),
    ("latency p50 µs", ("latency_us", "p50"), False, False),
    ("latency p99 µs", ("latency_us", "p99"), False, True),
    ("latency p99.9 µs", ("latency_us", "p99.9"), False, False),
)


@dataclass(frozen=True)
class Row:
    """One metric of the comparison; ``change`` is relative (+0.1 = 10 % higher)."""

    label: str
    base: float
    new: float
    change: float
    regressed: bool
    gating: bool


@dataclass(frozen=True)
class Comparison:
    """Rows plus the verdict: ``failures`` lists why the gate fails ([] = pass)."""

    rows: tuple[Row, ...]
    failures: tuple[str, ...]


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = doc
    for key in path:
        value = value[key]
    return float(value)


def compare(base: dict[str, Any], new: dict[str, Any], max_regression: float) -> Comparison:
    """Compare two results documents. Pure."""
    rows, failures = [], []
    for label, path, higher_is_better, gating in METRICS:
        b, n = _get(base, path), _get(new, path)
        change = (n - b) / b if b else (0.0 if n == b else float("inf"))
        worse = -change if higher_is_better else change
        regressed = worse > max_regression
        rows.append(Row(label, b, n, change, regressed, gating))
        if regressed and gating:
            failures.append(f"{label} {change:+.1%} (allowed ±{max_regression:.0%})")
    for name, doc in (("base", base), ("new", new)):
        if not doc["valid"]:
            failures.append(f"{name} run is invalid: " + "; ".join(doc["invalid_reasons"]))
    return Comparison(tuple(rows), tuple(failures))


def render(comparison: Comparison) -> str:
    """A table with one line per metric and the verdict."""
    lines = [f"{'metric':20}{'base':>14}{'new':>14}{'change':>10}"]
    for row in comparison.rows:
        flag = "  REGRESSION" if row.regressed else ""
        lines.append(f"{row.label:20}{row.base:>14.1f}{row.new:>14.1f}{row.change:>+10.1%}{flag}")
    lines.append("FAIL: " + "; ".join(comparison.failures) if comparison.failures else "PASS")
    return "\n".join(lines)


@dataclass(frozen=True)
class CompareOptions:
    """``bench compare`` arguments."""

    base: Path
    new: Path
    max_regression: float


def run_compare(options: CompareOptions) -> int:
    """Print the comparison; exit status 0 = pass, 1 = regression, 2 = unreadable input."""
    try:
        base, new = results.load(options.base), results.load(options.new)
    except results.ResultsError as err:
        print(f"bench compare: {err}", file=sys.stderr)
        return 2
    comparison = compare(base, new, options.max_regression)
    print(render(comparison))
    return 1 if comparison.failures else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench compare``."""
    parser = sub.add_parser("compare", help="compare two results files; exit 1 on regression")
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--max-regression", type=parse_percent, default=0.10)
    parser.set_defaults(
        handler=lambda ns: run_compare(CompareOptions(ns.base, ns.new, ns.max_regression))
    )
