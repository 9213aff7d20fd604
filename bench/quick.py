"""``bench quick``: a first load test in one command, right after ``pip install -e .``.

    bench quick [--store memory:// | redis://HOST:PORT/DB] [--out DIR] [--duration 10s]
                [--rate 500] [--connections 16] [--slo p99=1ms …]

1. Makes throw-away keys, a root-signed trust list and a corpus (:mod:`bench.corpus`) in a
   temporary directory.
2. Starts a verifier in a child process (:mod:`bench.localservice`), its store seeded with
   the corpus's institution, one scanner credential and the holders of ``registry.jsonl``.
   The default ``memory://`` store needs no Redis.
3. Runs the standard scenario with the bench's engine (:func:`bench.runner.run`): open loop
   at ``--rate`` requests per second, one generating process, 1 s of warm-up, then
   ``--duration`` measured, every response checked against the corpus's oracle.
4. Writes ``bench-quick.json`` (the results document) and ``bench-quick.png`` (the plot)
   into ``--out``, then prints the report, whose last line is the verdict.

Exit status: 0 for a valid run in which every response matched its expected verdict and
no request failed, 1 for an INVALID or FAILED run, 2 when the set-up itself failed.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import plot, results, runner
from bench.args import (
    DEFAULT_SLOS,
    Slo,
    add_slo_argument,
    parse_duration,
    positive_float,
    positive_int,
    slos_from,
)
from bench.corpus import REGISTRY, CorpusOptions
from bench.corpus_cmd import generate_with_bar
from bench.corpus_format import CorpusError
from bench.corpus_plan import CorpusPlanError
from bench.localservice import LocalServiceConfig, LocalServiceError, local_service
from bench.report import print_progress, render, verdict
from verifier import paserk, trust
from verifier.errors import VerifierError

RESULTS = "bench-quick.json"
PLOT = "bench-quick.png"
ISSUER, CARD = "nhsa", "mi-voucher"
WARMUP_S = 1.0
MAX_RUN_S = 240.0  # warm-up + duration must end well inside the tokens' 300 s lifetime


@dataclass(frozen=True)
class QuickOptions:
    """What ``bench quick`` was asked for."""

    store: str = "memory://"
    out: Path = Path(".")
    duration_s: float = 10.0
    rate: float = 500.0
    connections: int = 16
    slos: tuple[Slo, ...] = DEFAULT_SLOS


def corpus_size(opts: QuickOptions) -> int:
    """Requests needed for warm-up plus duration at the rate, with 10 % to spare."""
    return math.ceil(opts.rate * (WARMUP_S + opts.duration_s) * 1.1) + 100


def write_keys(directory: Path) -> tuple[Path, Path, Path]:
    """Throw-away issuer key, trust list and root public key files; returns their paths."""
    root, issuer = paserk.generate(), paserk.generate()
    keys = {issuer.kid: trust.IssuerKey(issuer.kid, issuer.public, ISSUER, frozenset({CARD}))}
    now = time.time()
    paths = directory / "nhsa.secret", directory / "trust.paseto", directory / "root.public"
    paths[0].write_text(paserk.secret_to_paserk(issuer.secret) + "\n")
    paths[1].write_text(trust.sign(keys, root.secret, 1, now - 60, now + 86_400) + "\n")
    paths[2].write_text(paserk.public_to_paserk(root.public) + "\n")
    return paths


def quick(opts: QuickOptions) -> int:
    """Set up, run and report (see the module docstring); returns the exit status."""
    if opts.duration_s + WARMUP_S > MAX_RUN_S:
        print(
            f"bench quick: --duration must be at most {MAX_RUN_S - WARMUP_S:g} s", file=sys.stderr
        )
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="bench-quick-") as tmp:
            outcome = _run_in(Path(tmp), opts)
    except (
        CorpusError,
        CorpusPlanError,
        LocalServiceError,
        runner.RunError,
        runner.SettingsError,
        VerifierError,
        OSError,
    ) as err:
        print(f"bench quick: error: {err}", file=sys.stderr)
        return 2
    return finish(results.build(outcome, slos=opts.slos), opts.out)


def finish(doc: dict[str, Any], out: Path) -> int:
    """Write the results and the plot, print the report (verdict last); the exit status."""
    out.mkdir(parents=True, exist_ok=True)
    results.write(doc, out / RESULTS)
    try:
        plot.draw(doc, out / PLOT)
        wrote = f"{out / RESULTS} and {out / PLOT}"
    except plot.PlotUnavailable as err:
        wrote = f"{out / RESULTS} (no plot: {err})"
    print(f"bench quick: wrote {wrote}", file=sys.stderr, flush=True)
    print(render(doc), flush=True)
    return 0 if verdict(doc)[0] else 1


def _run_in(directory: Path, opts: QuickOptions) -> runner.RunOutcome:
    key, trust_list, root_key = write_keys(directory)
    corpus = directory / "corpus"
    count = corpus_size(opts)
    print(f"bench quick: signing {count} requests …", file=sys.stderr, flush=True)
    made = generate_with_bar(
        CorpusOptions(key=key, iss=ISSUER, count=count, out=corpus, holders=max(100, count // 5))
    )
    inst = made.manifest.generator["institution"]
    config = LocalServiceConfig(
        opts.store,
        trust_list,
        root_key,
        corpus / REGISTRY,
        inst["id"],
        inst["name"],
        (inst["card"],),
    )
    print(f"bench quick: starting a verifier on {opts.store} …", file=sys.stderr, flush=True)
    with local_service(config) as service:
        settings = runner.RunSettings(
            target=service.url,
            credential=service.credential,
            rate=opts.rate,
            duration_s=opts.duration_s,
            connections=opts.connections,
            warmup_s=WARMUP_S,
        )
        return runner.run(settings, runner.CorpusSource(corpus), print_progress)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``bench quick``."""
    p = sub.add_parser(
        "quick",
        help="a first load test: local service, corpus, run, report and plot in one go",
        description="Start a local verifier (no Redis needed), sign a small corpus, run "
        "a short open-loop test against it and write bench-quick.json and bench-quick.png.",
    )
    p.add_argument("--store", default="memory://", help="memory:// (default) or redis://…")
    p.add_argument("--out", type=Path, default=Path("."), help="where to write the results")
    p.add_argument("--duration", type=parse_duration, default=10.0, help="measured time (10s)")
    p.add_argument("--rate", type=positive_float, default=500.0, help="requests/s (500)")
    p.add_argument("--connections", type=positive_int, default=16, help="connections (16)")
    add_slo_argument(p)
    p.set_defaults(
        handler=lambda a: quick(
            QuickOptions(a.store, a.out, a.duration, a.rate, a.connections, slos_from(a))
        )
    )
