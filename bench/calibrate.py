"""``bench calibrate``: the bench measured against a target that does nothing.

Starts the built-in no-op HTTP server (:mod:`bench.noop_server`, its own process on
127.0.0.1) and runs the real engine against it with a synthetic corpus:

* default: an open-loop run at a modest ``--rate`` (1000 rps). Its latency is the
  **noise floor**: what the bench plus loopback add to any measurement.
* ``--max``: a closed-loop run as fast as possible: the bench's **maximum rate**.

Either way it also reports the generator's CPU per request (process CPU time / requests,
kernel socket work included). The Python share of it alone, without system calls, is a
measurement of the engine's code rather than of this run: ``python experiments/hotpath.py``.
``--serve PORT`` only runs the no-op server in the foreground (to point ``wrk`` at it);
``--target URL`` uses an already running no-op server instead of starting one.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import noop_server, results, runner
from bench.args import add_timing_arguments, positive_float
from bench.report import print_progress, render

_MAX_RPS_GUESS = 250_000  # synthetic corpus size for --max: more than any one host can do


@dataclass(frozen=True)
class CalibrateOptions:
    """``bench calibrate`` arguments (``target=None``: start the built-in no-op server)."""

    max: bool
    rate: float
    connections: int
    processes: int
    duration_s: float
    warmup_s: float
    target: str | None
    out: Path | None
    poisson: bool = False
    seed: int = 0
    drain_s: float = 2.0
    spin: bool = True


def calibrate(options: CalibrateOptions) -> dict[str, Any]:
    """Run the calibration and return its results document (with a ``calibration`` key)."""
    server = None if options.target else noop_server.start_in_process()
    try:
        target = options.target or (server.url if server else "")
        settings = runner.RunSettings(
            target=target,
            credential="calibrate",
            rate=None if options.max else options.rate,
            duration_s=options.duration_s,
            connections=options.connections,
            processes=options.processes,
            warmup_s=options.warmup_s,
            poisson=options.poisson,
            seed=options.seed,
            drain_s=options.drain_s,
            spin=options.spin,
        )
        span = options.warmup_s + options.duration_s + 1
        count = math.ceil((_MAX_RPS_GUESS if options.max else options.rate * 1.05) * span)
        source = runner.SyntheticSource(count + options.connections)
        outcome = runner.run(settings, source, print_progress)
    finally:
        if server is not None:
            server.stop()
    document = results.build(outcome, "calibrate-max" if options.max else "calibrate-noise")
    document["calibration"] = {
        "cpu_us_per_request": document["generator"]["cpu_us_per_request"],
    }
    return document


def run_calibrate(options: CalibrateOptions) -> int:
    """Calibrate, print the report and the headline figures, write ``--out`` if given."""
    try:
        document = calibrate(options)
    except runner.RunError as err:
        print(f"bench calibrate: {err}", file=sys.stderr)
        return 2
    if options.max:
        headline = f"maximum rate: {document['achieved_rps']:.0f} rps"
    else:
        lat = document["latency_us"]
        headline = (
            f"noise floor at {options.rate:g} rps: p50 {lat['p50']} µs, p99 {lat['p99']} µs,"
            f" p99.9 {lat['p99.9']} µs; send lag p99 {document['send_lag_us']['p99']} µs"
        )
    extra = ["", headline]
    if not options.max and options.spin:
        extra.append("(the generator CPU above includes its spinning between sends)")
    print(render(document, *extra))  # the verdict stays the last line
    if options.out is not None:
        results.write(document, options.out)
    return 0 if document["valid"] else 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench calibrate``."""
    parser = sub.add_parser("calibrate", help="noise floor and maximum rate vs a no-op server")
    add_timing_arguments(parser, duration="10s")
    parser.add_argument("--max", action="store_true", help="measure the maximum rate")
    parser.add_argument("--rate", type=positive_float, default=1000.0, help="noise-floor rate")
    parser.add_argument("--target", help="an already running no-op server (default: start one)")
    parser.add_argument("--serve", type=int, metavar="PORT", help="only serve, for wrk")
    parser.add_argument("--out", type=Path)
    parser.set_defaults(handler=_handle, warmup=1.0)  # calibrate warms up 1 s by default


def _handle(ns: argparse.Namespace) -> int:
    if ns.serve is not None:
        noop_server.serve_foreground(ns.serve)
        return 0
    options = CalibrateOptions(
        max=ns.max,
        rate=ns.rate,
        connections=ns.connections,
        processes=ns.processes,
        duration_s=ns.duration,
        warmup_s=ns.warmup,
        target=ns.target,
        out=ns.out,
        poisson=ns.poisson,
        seed=ns.seed,
        drain_s=ns.drain,
        spin=not ns.no_spin,
    )
    return run_calibrate(options)
