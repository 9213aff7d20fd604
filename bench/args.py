"""Command-line vocabulary shared by the subcommands: units, SLOs, and the load flags.

The parsers are pure functions (``"30s"`` → 30.0, ``"10%"`` → 0.10, ``"p99=1ms"`` →
``Slo(99.0, 1000.0)``) raising ``argparse.ArgumentTypeError`` with a message naming the
bad value, so argparse reports it against the right flag.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from bench.runner import RunSettings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"30s"``, ``"500ms"``, ``"2m"``, ``"1.5"`` (seconds) → seconds as a float."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 500ms, 2m)")
    return float(match.group(1)) * _SECONDS[match.group(2) or "s"]


def parse_percent(text: str) -> float:
    """``"10%"`` or ``"0.1"`` → 0.1 (a fraction, must be >= 0)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r} (try 10%)") from err
    if value < 0:
        raise argparse.ArgumentTypeError(f"percentage must not be negative: {text!r}")
    return value


def positive_float(text: str) -> float:
    """A float > 0 (rates)."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def positive_int(text: str) -> int:
    """An int >= 1 (connections, processes)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


@dataclass(frozen=True)
class Slo:
    """A latency objective: the *percentile* of latency must be at most *limit_us*."""

    percentile: float
    limit_us: float

    def __str__(self) -> str:
        return f"p{self.percentile:g}<={self.limit_us:g}µs"


#: The product's latency goal (docs/PERFORMANCE.md): client p99 ≤ 1 ms and p99.9 ≤ 2 ms.
DEFAULT_SLOS = (Slo(99.0, 1000.0), Slo(99.9, 2000.0))


def parse_slo(text: str) -> Slo:
    """``"p99=1ms"``, ``"p99.9=500us"``, ``"max=10ms"`` → :class:`Slo`."""
    name, sep, limit = text.partition("=")
    name = name.strip().lower()
    if not sep:
        raise argparse.ArgumentTypeError(f"SLO must look like p99=1ms, got {text!r}")
    try:
        percentile = 100.0 if name == "max" else float(name.removeprefix("p"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"bad percentile in SLO {text!r}") from err
    if not name.startswith(("p", "max")) or not 0 < percentile <= 100:
        raise argparse.ArgumentTypeError(f"bad percentile in SLO {text!r}")
    return Slo(percentile, parse_duration(limit) * 1e6)


def add_slo_argument(parser: argparse.ArgumentParser) -> None:
    """``--slo p99=1ms`` (repeatable): the objectives a run is shown against."""
    parser.add_argument(
        "--slo",
        type=parse_slo,
        action="append",
        metavar="pQ=LIMIT",
        help="latency objective for the report and plot, repeatable"
        " (default: p99=1ms and p99.9=2ms)",
    )


def slos_from(ns: argparse.Namespace) -> tuple[Slo, ...]:
    """The ``--slo`` values given, or :data:`DEFAULT_SLOS`."""
    return tuple(ns.slo) if ns.slo else DEFAULT_SLOS


def add_load_arguments(parser: argparse.ArgumentParser, *, duration: str = "30s") -> None:
    """Flags every load-generating command shares (target, connections, timing, …)."""
    parser.add_argument("--target", required=True, help="URL, e.g. http://127.0.0.1:8080/v1/verify")
    parser.add_argument("--credential", required=True, help="scanner credential (Bearer token)")
    parser.add_argument("--allow-remote", action="store_true", help="permit a non-loopback target")
    add_timing_arguments(parser, duration=duration)


def add_timing_arguments(parser: argparse.ArgumentParser, *, duration: str = "30s") -> None:
    """Connections, processes, duration, warm-up, drain and pacing flags."""
    parser.add_argument("--connections", "-c", type=positive_int, default=32)
    parser.add_argument("--processes", "-p", type=positive_int, default=1)
    parser.add_argument("--duration", "-d", type=parse_duration, default=parse_duration(duration))
    parser.add_argument("--warmup", type=parse_duration, default=0.0)
    parser.add_argument("--drain", type=parse_duration, default=2.0, help="wait for stragglers")
    parser.add_argument("--poisson", action="store_true", help="Poisson arrivals (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="sleep between sends at modest rates (less CPU, more wake-up noise)",
    )


def settings_from(ns: argparse.Namespace, rate: float | None) -> RunSettings:
    """The :class:`RunSettings` described by parsed load flags, at *rate* (None = max)."""
    return RunSettings(
        target=ns.target,
        credential=ns.credential,
        rate=rate,
        duration_s=ns.duration,
        connections=ns.connections,
        processes=ns.processes,
        warmup_s=ns.warmup,
        poisson=ns.poisson,
        seed=ns.seed,
        drain_s=ns.drain,
        allow_remote=ns.allow_remote,
        spin=not ns.no_spin,
    )
