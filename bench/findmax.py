"""``bench find-max --slo p99=1ms …``: the highest rate that still meets the SLO.

:func:`find_max` is the search, independent of how a trial is run: it takes a function
``rate → results document`` (a short real run in the CLI, a fake in tests). A trial passes
when its run is valid (the generator kept its schedule, nothing left unsent, corpus not
exhausted), it had no errors or mismatches, and every SLO holds. The search doubles the
rate from ``start_rate`` until a trial fails (or ``max_rate`` passes), then bisects between
the best pass and the first failure until they are within ``resolution`` of each other.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import results, runner
from bench.args import (
    Slo,
    add_load_arguments,
    parse_percent,
    parse_slo,
    positive_float,
    positive_int,
    settings_from,
)
from bench.histogram import Histogram
from bench.report import print_progress


@dataclass(frozen=True)
class Trial:
    """One run of the search: its rate, whether it passed, and why not."""

    rate: float
    passed: bool
    why: str
    achieved_rps: float
    latency_us: dict[str, Any]


@dataclass(frozen=True)
class FindMaxResult:
    """``best_rate`` is the highest passing rate (None if none passed)."""

    best_rate: float | None
    trials: tuple[Trial, ...]


def judge(doc: dict[str, Any], slos: Sequence[Slo]) -> tuple[bool, str]:
    """Does one trial's results document pass? Returns (passed, reason if not)."""
    if not doc["valid"]:
        return False, "invalid run: " + "; ".join(doc["invalid_reasons"])
    if doc["requests"]["errors"] or doc["requests"]["mismatches"]:
        req = doc["requests"]
        return False, f"{req['errors']} errors, {req['mismatches']} mismatches"
    histogram = Histogram.from_dict(doc["histograms"]["latency"])
    for slo in slos:
        observed = histogram.percentile(slo.percentile) / 1000
        if observed > slo.limit_us:
            return False, f"p{slo.percentile:g} {observed:.1f} µs > {slo.limit_us:g} µs"
    return True, ""


def find_max(
    run_at: Callable[[float], dict[str, Any]],
    slos: Sequence[Slo],
    start_rate: float,
    max_rate: float,
    resolution: float = 0.05,
    max_trials: int = 16,
) -> FindMaxResult:
    """Search for the highest rate in ``(0, max_rate]`` whose trial passes."""
    trials: list[Trial] = []
    best, worst = 0.0, math.inf  # highest pass, lowest failure
    rate = min(start_rate, max_rate)
    while len(trials) < max_trials:
        doc = run_at(rate)
        passed, why = judge(doc, slos)
        trials.append(Trial(rate, passed, why, doc["achieved_rps"], doc["latency_us"]))
        if passed:
            best = rate
        else:
            worst = rate
        if worst == math.inf:
            if rate >= max_rate:
                break
            rate = min(rate * 2, max_rate)
            continue
        if best and worst - best <= resolution * best:
            break
        rate = (best + worst) / 2
    return FindMaxResult(best or None, tuple(trials))


@dataclass(frozen=True)
class FindMaxOptions:
    """``bench find-max`` arguments; ``settings.rate`` is replaced per trial."""

    settings: runner.RunSettings
    corpus: Path
    slos: tuple[Slo, ...]
    start_rate: float
    max_rate: float
    resolution: float
    max_trials: int
    out: Path | None


def run_find_max(options: FindMaxOptions) -> int:
    """Run the search with real trials, each on its own slice of the corpus."""
    if options.settings.processes > 1:
        # A trial's slice split across processes no longer follows the corpus's replay
        # placement (made for splits of the whole corpus): the oracle would be wrong.
        print(
            "bench find-max: runs one process (--processes 1); use bench run for more",
            file=sys.stderr,
        )
        return 2
    offset = 0
    span = options.settings.warmup_s + options.settings.duration_s

    def run_at(rate: float) -> dict[str, Any]:
        nonlocal offset
        needed = math.ceil(rate * span * 1.02) + options.settings.connections + 16
        source = runner.CorpusSource(options.corpus, offset, offset + needed)
        offset += needed
        print(f"find-max: trial at {rate:.0f} rps", file=sys.stderr, flush=True)
        settings = replace(options.settings, rate=rate)
        return results.build(runner.run(settings, source, print_progress), "find-max-trial")

    try:
        found = find_max(
            run_at, options.slos, options.start_rate, options.max_rate, options.resolution,
            options.max_trials,
        )  # fmt: skip
    except runner.RunError as err:
        print(f"bench find-max: {err}", file=sys.stderr)
        return 2
    for trial in found.trials:
        verdict = "pass" if trial.passed else f"FAIL ({trial.why})"
        print(f"{trial.rate:>10.0f} rps  p99 {trial.latency_us['p99']:>9.1f} µs  {verdict}")
    slos = ", ".join(map(str, options.slos))
    print(f"highest rate meeting {slos}: {found.best_rate or 0:.0f} rps")
    if options.out is not None:
        document = {
            "schema": "qr-bench-findmax",
            "schema_version": 1,
            "slos": [asdict(s) for s in options.slos],
            "best_rate": found.best_rate,
            "trials": [asdict(t) for t in found.trials],
            "settings": asdict(options.settings),
            "provenance": results.provenance(time.time()),
        }
        options.out.write_text(json.dumps(document, indent=1) + "\n")
    return 0 if found.best_rate else 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench find-max``."""
    parser = sub.add_parser("find-max", help="highest rate that still meets the SLO")
    add_load_arguments(parser, duration="10s")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--slo", type=parse_slo, action="append", required=True)
    parser.add_argument("--start-rate", type=positive_float, default=1000.0)
    parser.add_argument("--max-rate", type=positive_float, default=200_000.0)
    parser.add_argument("--resolution", type=parse_percent, default=0.05)
    parser.add_argument("--max-trials", type=positive_int, default=16)
    parser.add_argument("--out", type=Path)
    parser.set_defaults(handler=_handle)


def _handle(ns: argparse.Namespace) -> int:
    options = FindMaxOptions(
        settings=settings_from(ns, rate=ns.start_rate),
        corpus=ns.corpus,
        slos=tuple(ns.slo),
        start_rate=ns.start_rate,
        max_rate=ns.max_rate,
        resolution=ns.resolution,
        max_trials=ns.max_trials,
        out=ns.out,
    )
    return run_find_max(options)
