"""``bench corpus`` on the command line: flags → :class:`CorpusOptions` → generate → next steps.

Also the progress bar it (and ``bench quick``) shows on standard error while signing: redrawn
in place on a terminal, a plain line every 10 % otherwise, so that logs stay readable.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from bench.corpus import CorpusOptions, CorpusSummary, generate_corpus
from bench.corpus_format import CorpusError
from bench.corpus_plan import DEFAULT_MIX, CorpusPlanError, parse_mix
from verifier.errors import ConfigError
from verifier.records import CARD_TYPES

MAX_LIFETIME_DEFAULT = 300  # the service's default VERIFIER_MAX_LIFETIME


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``bench corpus``."""
    p = sub.add_parser(
        "corpus",
        help="pre-generate signed requests, each with the verdict it must get",
        description="Sign COUNT requests on all cores and write them, with their expected "
        "verdicts, as a corpus in DIR (requests.bin + manifest.json), plus registry.jsonl "
        "(the holders, for `verifier registry import`). Valid tokens stay fresh for --ttl "
        "seconds: run the corpus before the manifest's generator.valid_until.",
    )
    p.add_argument("--key", required=True, type=Path, help="issuer secret key file (k4.secret)")
    p.add_argument(
        "--iss", required=True, help="issuer id the trust list gives that key, e.g. nhsa"
    )
    p.add_argument("--count", required=True, type=int, help="number of requests")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="corpus directory")
    p.add_argument(
        "--mix", default=DEFAULT_MIX, help=f"shares of each kind of entry (default {DEFAULT_MIX})"
    )
    p.add_argument("--holders", type=int, default=10_000, help="insured population (10000)")
    p.add_argument(
        "--seed",
        type=int,
        help="makes the layout and the holders reproducible (never the jti nonces)",
    )
    p.add_argument("--card", default="mi-voucher", choices=CARD_TYPES)
    p.add_argument("--region", default="110101", help="6-digit region code (110101)")
    p.add_argument("--ttl", type=int, default=300, help="token lifetime in seconds (300)")
    p.add_argument("--json", action="store_true", help='bodies as {"token": …} JSON')
    p.add_argument("--processes", type=int, default=0, help="signing processes (all cores)")
    p.set_defaults(handler=_run)


def _run(a: argparse.Namespace) -> int:
    try:
        opts = CorpusOptions(
            key=a.key,
            iss=a.iss,
            count=a.count,
            out=a.out,
            mix=parse_mix(a.mix),
            holders=a.holders,
            seed=a.seed,
            card=a.card,
            region=a.region,
            ttl=a.ttl,
            json_body=a.json,
            processes=a.processes,
        )
        summary = generate_with_bar(opts)
    except (CorpusPlanError, CorpusError, ConfigError, OSError) as err:
        print(f"bench corpus: error: {err}", file=sys.stderr)
        return 2
    print(next_steps(summary))
    return 0


def next_steps(summary: CorpusSummary) -> str:
    """What was written and the commands that set a service up to run it."""
    m, d = summary.manifest, summary.directory
    g = m.generator
    inst = g["institution"]
    q = shlex.quote
    key = {"public": g["key_ids"]["trusted_public"], "issuer": inst["issuer"]}
    lines = [
        f"wrote {m.count} requests to {d} in {summary.seconds:.1f} s "
        f"({summary.rate:,.0f}/s on {summary.processes} process(es))",
        "expected: " + ", ".join(f"{k} {n}" for k, n in m.verdicts.items()),
        f"fresh from {g['valid_from']} until {g['valid_until']}: run it before then",
        "",
        "The service's trust list must hold the issuer key: `verifier trust sign` a source",
        "file whose keys include  " + json.dumps({**key, "cards": [inst["card"]]}),
        "Then, with VERIFIER_STORE pointing at the service's Redis:",
        "",
        f"  verifier registry import {q(str(d / g['holders']['registry']))}",
        f"  verifier institutions put {inst['id']} --name {q(inst['name'])} --cards {inst['card']}",
        f"  CREDENTIAL=$(verifier scanners add --institution {inst['id']})",
        '  bench run --target http://127.0.0.1:8080/v1/verify --credential "$CREDENTIAL" '
        f"--corpus {q(str(d))} --rate 1000 --duration 30s --out run.json",
        "",
        "Replays stay behind their first use for any --processes from 1 to "
        f"{max(g['replays']['safe_for_processes'])} over the whole corpus. Every token is "
        "single-use: run a corpus once per store.",
    ]
    if g["ttl"] > MAX_LIFETIME_DEFAULT:
        lines.append(
            f"Note: --ttl {g['ttl']} needs VERIFIER_MAX_LIFETIME >= {g['ttl']} on the service."
        )
    return "\n".join(lines)


def generate_with_bar(opts: CorpusOptions) -> CorpusSummary:
    """:func:`generate_corpus` with a progress bar on standard error."""
    bar = ProgressBar(opts.count, "signing")
    try:
        return generate_corpus(opts, on_progress=bar.update)
    finally:
        bar.close()


class ProgressBar:
    """Counts ``done`` out of ``total`` items and shows the rate since the start."""

    WIDTH = 30

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.done = 0
        self.started = time.monotonic()
        self._last_decile = -1

    def update(self, done: int) -> None:
        """Record that *done* items are done in all, and redraw."""
        self.done = done
        decile = self.done * 10 // self.total
        if not self.tty and decile == self._last_decile:
            return
        self._last_decile = decile
        filled = self.done * self.WIDTH // self.total
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{self.done * 100 // self.total:3d}% {self.done}/{self.total} {self.rate():,.0f}/s"
        )
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def rate(self) -> float:
        """Items per second so far."""
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def close(self) -> None:
        """End the line on a terminal."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
