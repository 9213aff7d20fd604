"""The results file: one JSON document per run, versioned, with its provenance.

Top-level keys of a ``qr-bench-results`` document (``schema_version`` 1)::

    schema, schema_version, kind ("run" | "calibrate-noise" | "calibrate-max" | "find-max-trial")
    valid, invalid_reasons[]        # false + reasons: generator fell behind, not sent, exhausted
    mode                            # "open-loop constant" | "open-loop poisson" | "closed-loop max"
    achieved_rps                    # responses to measured requests / measured window
    intended_rps                    # the --rate asked for (null with --max)
    window_s, requests{sent, completed, errors, mismatches, not_sent,
                       waited_for_connection, warmup_completed}
    latency_us, service_time_us, send_lag_us   # {count, min, p50, p90, p99, p99.9, p99.99,
                                               #  max, mean} in microseconds
    verdicts[]                      # {expected, actual, count, latency_us{…}} per pair
    mismatch_examples[], error_examples[]
    timeline[]                      # per second: {second, completed, errors, mismatches,
                                    #   p50_us, p99_us, max_us, partial (= the drain after
                                    #   the window: stragglers, not a whole second)}
    generator{cpu_s, cpu_user_s, cpu_system_s, cpu_us_per_request, processes[]}
    histograms{latency, service_time, send_lag}   # compact HDR form (bench.histogram)
    slos[]                          # {objective, percentile, limit_us, observed_us, met}
                                    #   (latency objectives; absent from older documents)
    settings{…}, corpus{…}, provenance{started_at, bench_version, git_revision, git_dirty,
                                       python, packages, cpu, …}

Latency is completion − intended send time; service time is completion − actual send;
send lag is actual − intended. A run is invalid (not merely slower) when the generator
could not keep to the schedule, so a lower achieved rate is never reported quietly. Whether
the run met its SLOs is recorded beside validity, not folded into it: a valid run that
misses its SLO is a true measurement of a slow service.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.args import Slo
from bench.histogram import Histogram
from bench.runner import RunOutcome

DISTRIBUTION = "insurance-qr-verifier"  # the installed package that carries `bench`
SCHEMA = "qr-bench-results"
SCHEMA_VERSION = 1
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
MAX_SEND_LAG_P99_US = 100.0
MIN_ACHIEVED_FRACTION = 0.95


class ResultsError(ValueError):
    """A file is not a results document this version of the bench can read."""


def summary_us(histogram: Histogram) -> dict[str, Any]:
    """Count, min, p50 … p99.99, max and mean of a nanosecond histogram, in microseconds."""
    values = histogram.percentiles(PERCENTILES)
    out: dict[str, Any] = {"count": histogram.total, "min": _us(histogram.min)}
    if not histogram.total:
        out["min"] = 0.0
    out.update({f"p{q:g}": _us(values[q]) for q in PERCENTILES})
    out["max"] = _us(histogram.max)
    out["mean"] = round(histogram.mean() / 1000, 3)
    return out


def _us(ns: int) -> float:
    return round(ns / 1000, 3)


def validity(outcome: RunOutcome) -> list[str]:
    """Why the run cannot be trusted as a measurement at its intended rate ([] if it can)."""
    r, s = outcome.result, outcome.settings
    reasons = []
    if s.rate is not None:
        lag_p99 = r.send_lag.percentile(99) / 1000
        if lag_p99 > MAX_SEND_LAG_P99_US:
            why = (
                f"generator fell behind: send-lag p99 {lag_p99:.1f} µs > {MAX_SEND_LAG_P99_US:g} µs"
            )
            if r.waited_for_connection:
                share = 100 * r.waited_for_connection / max(1, r.sent)
                why += (
                    f"; {r.waited_for_connection} requests ({share:.2f} %) waited for a free"
                    f" connection (all {s.connections} busy: add --connections, or the"
                    " target is saturated)"
                )
            reasons.append(why)
        achieved = r.completed / r.window_s if r.window_s else 0.0
        if not r.corpus_exhausted and achieved < MIN_ACHIEVED_FRACTION * s.rate:
            reasons.append(f"achieved {achieved:.0f} rps, below the intended {s.rate:g} rps")
    if r.not_sent:
        reasons.append(f"{r.not_sent} requests came due but could not be sent before the end")
    if r.corpus_exhausted:
        reasons.append(
            f"corpus exhausted: the run stopped at {r.window_s:.2f} s of {s.duration_s:g} s"
            f" ({r.sent} measured requests sent)"
        )
    if r.completed == 0:
        reasons.append("no responses were measured")
    return reasons


def slo_checks(latency: Histogram, slos: Sequence[Slo]) -> list[dict[str, Any]]:
    """Each latency objective with the observed figure and whether it held."""
    checks = []
    for slo in sorted(slos, key=lambda s: s.percentile):
        observed = _us(latency.percentile(slo.percentile)) if latency.total else None
        checks.append(
            {
                "objective": str(slo),
                "percentile": slo.percentile,
                "limit_us": slo.limit_us,
                "observed_us": observed,
                "met": observed is not None and observed <= slo.limit_us,
            }
        )
    return checks


def build(outcome: RunOutcome, kind: str = "run", slos: Sequence[Slo] = ()) -> dict[str, Any]:
    """The results document for *outcome*, judged against *slos* (see the module docstring)."""
    r, s = outcome.result, outcome.settings
    reasons = validity(outcome)
    requests = r.completed + r.warmup_completed
    cpu_s = r.cpu_user_s + r.cpu_system_s
    if s.rate is None:
        mode = "closed-loop max"
    else:
        mode = "open-loop poisson" if s.poisson else "open-loop constant"
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "valid": not reasons,
        "invalid_reasons": reasons,
        "mode": mode,
        "achieved_rps": round(r.completed / r.window_s, 1) if r.window_s else 0.0,
        "intended_rps": s.rate,
        "window_s": round(r.window_s, 6),
        "requests": {
            "sent": r.sent,
            "completed": r.completed,
            "errors": r.errors,
            "mismatches": r.mismatches,
            "not_sent": r.not_sent,
            "waited_for_connection": r.waited_for_connection,
            "warmup_completed": r.warmup_completed,
        },
        "latency_us": summary_us(r.latency),
        "service_time_us": summary_us(r.service),
        "send_lag_us": summary_us(r.send_lag),
        "verdicts": [
            {"expected": e, "actual": a, "count": h.total, "latency_us": summary_us(h)}
            for (e, a), h in sorted(r.verdicts.items())
        ],
        "mismatch_examples": r.mismatch_examples,
        "error_examples": r.error_examples,
        "timeline": [
            {
                "second": t.second,
                "completed": t.completed,
                "errors": t.errors,
                "mismatches": t.mismatches,
                "p50_us": _us(t.latency.percentile(50)),
                "p99_us": _us(t.latency.percentile(99)),
                "max_us": _us(t.latency.max),
                "partial": t.partial,
            }
            for t in r.seconds
        ],
        "generator": {
            "cpu_s": round(cpu_s, 3),
            "cpu_user_s": round(r.cpu_user_s, 3),
            "cpu_system_s": round(r.cpu_system_s, 3),
            "cpu_us_per_request": round(1e6 * cpu_s / requests, 2) if requests else None,
            "processes": outcome.processes,
        },
        "histograms": {
            "latency": r.latency.to_dict(),
            "service_time": r.service.to_dict(),
            "send_lag": r.send_lag.to_dict(),
        },
        "slos": slo_checks(r.latency, slos),
        "settings": asdict(s),
        "corpus": outcome.corpus,
        "provenance": provenance(outcome.started_at),
    }


def provenance(started_at: float) -> dict[str, Any]:
    """Where and with what a run was made: code version, git revision, versions, CPU, host."""
    return {
        "started_at": started_at,
        **code_provenance(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in ("aiohttp", "uvloop", "orjson")},
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def code_version(prov: dict[str, Any]) -> str:
    """``0.1.0 (git 1a2b3c4d5e, uncommitted changes)`` from a provenance record.

    The package version, then the commit's short hash when the code ran from a git
    checkout; older documents without these keys say so rather than guess.
    """
    version = prov.get("bench_version") or "version unknown"
    revision = prov.get("git_revision")
    if not revision:
        return version
    dirty = ", uncommitted changes" if prov.get("git_dirty") else ""
    return f"{version} (git {revision[:10]}{dirty})"


def code_provenance() -> dict[str, Any]:
    """The running code's package version, git commit and whether it was modified."""
    return {
        "bench_version": _version(DISTRIBUTION),
        "git_revision": _git(["rev-parse", "HEAD"]),
        "git_dirty": _git_dirty(),
    }


def current_code_version() -> str:
    """:func:`code_version` of the code running now (``bench --version``)."""
    return code_version(code_provenance())


def _git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout)."""
    status = _git(["status", "--porcelain", "--untracked-files=no"], strip=False)
    return None if status is None else bool(status.strip())


def _git(arguments: list[str], strip: bool = True) -> str | None:
    """The output of ``git ARGUMENTS`` in this package's folder; None if git cannot say."""
    try:
        done = subprocess.run(
            ["git", *arguments],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return (done.stdout.strip() or None) if strip else done.stdout


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write(document: dict[str, Any], path: Path) -> None:
    """Write *document* as indented JSON."""
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def load(path: Path) -> dict[str, Any]:
    """Read a results document, refusing other files and other schema versions."""
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: cannot read results: {err}") from err
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ResultsError(f"{path}: not a {SCHEMA} document")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {document.get('schema_version')} unsupported")
    return document
