"""``bench run``: one measured run against a target, written as a results document.

    bench run --target URL --credential SCANNER --corpus DIR (--rate R | --max)
              --duration 30s --connections C [--processes P] [--warmup 5s]
              [--slo p99=1ms …] --out run.json

Prints a progress line each second (stderr) and the report at the end (stdout), whose last
line is the verdict (:func:`bench.report.verdict`). Exit status: 0 for a valid run whose
every answer matched the oracle, 1 for a run marked INVALID or FAILED, 2 if it could not
run. A missed SLO is reported, not an exit status.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import results, runner
from bench.args import (
    Slo,
    add_load_arguments,
    add_slo_argument,
    positive_float,
    settings_from,
    slos_from,
)
from bench.report import print_progress, render, verdict


@dataclass(frozen=True)
class RunOptions:
    """``bench run`` arguments."""

    settings: runner.RunSettings
    corpus: Path
    out: Path
    slos: tuple[Slo, ...] = ()


def run_command(options: RunOptions) -> int:
    """Run, write the results file, print the report; the exit status is the verdict's."""
    settings = options.settings
    rate = "as fast as possible" if settings.rate is None else f"{settings.rate:g} rps"
    print(
        f"bench run: {settings.target} at {rate} for {settings.duration_s:g} s"
        f" (+{settings.warmup_s:g} s warm-up), {settings.connections} connections,"
        f" {settings.processes} process(es)",
        file=sys.stderr,
        flush=True,
    )
    try:
        outcome = runner.run(settings, runner.CorpusSource(options.corpus), print_progress)
    except runner.RunError as err:
        print(f"bench run: {err}", file=sys.stderr)
        return 2
    document = results.build(outcome, slos=options.slos)
    results.write(document, options.out)
    print(f"results written to {options.out}", file=sys.stderr, flush=True)
    print(render(document), flush=True)
    return 0 if verdict(document)[0] else 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench run``."""
    parser = sub.add_parser("run", help="one measured run against a target")
    add_load_arguments(parser)
    parser.add_argument("--corpus", type=Path, required=True, help="corpus directory")
    pace = parser.add_mutually_exclusive_group(required=True)
    pace.add_argument("--rate", type=positive_float, help="intended requests per second")
    pace.add_argument("--max", action="store_true", help="closed loop, as fast as possible")
    parser.add_argument("--out", type=Path, default=Path("run.json"))
    add_slo_argument(parser)
    parser.set_defaults(
        handler=lambda ns: run_command(
            RunOptions(
                settings_from(ns, rate=None if ns.max else ns.rate),
                ns.corpus,
                ns.out,
                slos_from(ns),
            )
        )
    )
