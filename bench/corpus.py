"""``bench corpus``: pre-generate the requests of a load test, each with its expected verdict.

The layout (which entry is valid, replayed, expired, …, and for which holder) comes from
``--seed`` (:mod:`bench.corpus_plan`, :mod:`bench.holders`); the tokens are signed on all
cores, a chunk of entries per task (:mod:`bench.corpus_sign`), and streamed in order into
:func:`bench.corpus_format.write_corpus`. ``registry.jsonl`` (the holders, for ``verifier
registry import``) is written before the records, the manifest last.

Expected verdicts: a valid entry gets its holder's coverage reason (``ok``,
``coverage_suspended``, ``coverage_terminated``, ``not_enrolled``, or for ``ss-ecard``
``physical_card_inactive``); the others ``replayed``, ``expired``, ``bad_signature``,
``unknown_key``, ``malformed``. They hold while every token is fresh: the manifest's
``generator.valid_from`` … ``valid_until`` (first ``iat`` … first ``exp``).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.corpus_format import CorpusEntry, Manifest, write_corpus
from bench.corpus_plan import (
    DEFAULT_MIX,
    REPLAY_SAFE_PROCESSES,
    CorpusPlanError,
    Plan,
    parse_mix,
    plan_corpus,
    replay_gap,
    segment_bounds,
)
from bench.corpus_sign import SignedChunk, SignJob, sign_chunk
from bench.holders import Population, make_population
from verifier import paserk, rfc3339
from verifier.keyfiles import read_secret_key
from verifier.policy import ClaimPolicy
from verifier.records import CARD_TYPES, REGION
from verifier.trust import ISSUER_PATTERN

REGISTRY = "registry.jsonl"
INSTITUTION_ID = "bench-hospital"
INSTITUTION_NAME = "Bench Hospital"
EXPECTED = {
    "replay": "replayed",
    "expired": "expired",
    "forged": "bad_signature",
    "unknown_key": "unknown_key",
    "malformed": "malformed",
}
_ISSUER = re.compile(ISSUER_PATTERN)  # the trust list's rule for an issuer name


@dataclass(frozen=True)
class CorpusOptions:
    """What ``bench corpus`` was asked for (see ``bench corpus --help``)."""

    key: Path
    iss: str
    count: int
    out: Path
    mix: Mapping[str, float] = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    holders: int = 10_000
    seed: int | None = None
    card: str = "mi-voucher"
    region: str = "110101"
    ttl: int = 300
    json_body: bool = False
    processes: int = 0  # 0: one per core


@dataclass(frozen=True)
class CorpusSummary:
    """What was written, and how fast the tokens were made."""

    directory: Path
    manifest: Manifest
    seconds: float
    processes: int

    @property
    def rate(self) -> float:
        """Corpus entries per second of generation (planning, signing and writing)."""
        return self.manifest.count / max(self.seconds, 1e-9)


def check_options(opts: CorpusOptions) -> None:
    """Raise :class:`CorpusPlanError` naming the first bad option."""
    if not _ISSUER.fullmatch(opts.iss):
        raise CorpusPlanError("--iss must be a short lowercase issuer id such as 'nhsa'")
    if opts.card not in CARD_TYPES:
        raise CorpusPlanError(f"--card must be one of {', '.join(CARD_TYPES)}")
    if not REGION.fullmatch(opts.region):
        raise CorpusPlanError("--region must be 6 digits")
    if not 1 <= opts.ttl <= 3600:
        raise CorpusPlanError("--ttl must be 1..3600 seconds (the service's default limit is 300)")
    if opts.count < 1 or opts.holders < 1 or opts.processes < 0:
        raise CorpusPlanError("--count and --holders must be at least 1, --processes at least 0")


def generate_corpus(
    opts: CorpusOptions,
    *,
    now: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> CorpusSummary:
    """Write the corpus and ``registry.jsonl`` into ``opts.out``; see the module docstring.

    *now* (default: the clock) is the ``iat`` of every fresh token; *on_progress* is called
    with the number of entries written so far after each signed chunk.
    """
    check_options(opts)
    started = time.monotonic()
    secret = read_secret_key(opts.key)
    seed = opts.seed if opts.seed is not None else secrets.randbits(63)
    plan = plan_corpus(opts.count, opts.mix, opts.holders, random.Random(f"corpus:{seed}"))
    people = make_population(opts.holders, opts.card, opts.region, seed)
    iat = float(int(time.time() if now is None else now))
    processes = opts.processes or os.cpu_count() or 1
    jobs = _jobs(plan, people, secret, opts, iat, processes)
    opts.out.mkdir(parents=True, exist_ok=True)
    with open(opts.out / REGISTRY, "wb") as f:
        for line in people.registry_lines():
            f.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    strangers = [paserk.pid(job.stranger[32:]) for job in jobs]
    meta = _generator_section(opts, seed, plan, people, secret, iat, strangers)
    if processes == 1:
        chunks: Iterator[SignedChunk] = map(sign_chunk, jobs)
        manifest = write_corpus(opts.out, _entries(plan, people, opts, chunks, on_progress), meta)
    else:
        # An executor, unlike multiprocessing.Pool, fails (BrokenProcessPool) instead of
        # hanging when a worker dies. map() yields the chunks in order.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
            chunks = pool.map(sign_chunk, jobs)
            manifest = write_corpus(
                opts.out, _entries(plan, people, opts, chunks, on_progress), meta
            )
    return CorpusSummary(opts.out, manifest, time.monotonic() - started, processes)


def _jobs(
    plan: Plan, people: Population, secret: bytes, opts: CorpusOptions, iat: float, processes: int
) -> list[SignJob]:
    size = max(256, -(-opts.count // (processes * 16)))  # ~16 tasks per process
    leeway = ClaimPolicy().exp_leeway
    jobs = []
    for first in range(0, opts.count, size):
        span = range(first, min(first + size, opts.count))
        subs = tuple("" if plan.holder[i] < 0 else people.subs[plan.holder[i]] for i in span)
        kinds = tuple(plan.kinds[i] for i in span)
        stranger = paserk.generate()
        jobs.append(
            SignJob(
                first,
                kinds,
                subs,
                secret,
                stranger.secret,
                opts.iss,
                opts.card,
                opts.region,
                iat,
                opts.ttl,
                leeway,
            )
        )
    return jobs


def _entries(
    plan: Plan,
    people: Population,
    opts: CorpusOptions,
    chunks: Iterator[SignedChunk],
    on_progress: Callable[[int], None] | None,
) -> Iterator[CorpusEntry]:
    """Corpus entries in file order; a replay copies its original's token."""
    wanted = set(plan.original.values())
    kept: dict[int, str] = {}
    ctype = "application/json" if opts.json_body else "text/plain"
    for chunk in chunks:
        for offset, token in enumerate(chunk.tokens):
            i = chunk.first + offset
            kind = plan.kinds[i]
            if kind == "replay":
                token = kept.pop(plan.original[i])
            elif i in wanted:
                kept[i] = token
            expected = people.expected[plan.holder[i]] if kind == "valid" else EXPECTED[kind]
            body = orjson.dumps({"token": token}) if opts.json_body else token.encode("ascii")
            yield CorpusEntry(body, ctype, expected)
        if on_progress is not None:
            on_progress(chunk.first + len(chunk.tokens))


def _generator_section(
    opts: CorpusOptions,
    seed: int,
    plan: Plan,
    people: Population,
    secret: bytes,
    iat: float,
    strangers: list[str],
) -> dict[str, Any]:
    """Provenance and set-up hints for ``manifest.json``'s ``generator`` object."""
    segments = segment_bounds(opts.count, REPLAY_SAFE_PROCESSES)
    registered = people.registry_lines()
    return {
        "tool": "bench corpus",
        "seed": seed,
        "created": rfc3339.format(time.time()),
        "mix": {k: round(v, 6) for k, v in opts.mix.items()},
        "counts": dict(Counter(plan.kinds)),
        "body": "application/json" if opts.json_body else "text/plain",
        "valid_from": rfc3339.format(iat),
        "valid_until": rfc3339.format(iat + opts.ttl),
        "valid_from_unix": iat,
        "valid_until_unix": iat + opts.ttl,
        "ttl": opts.ttl,
        "key_ids": {
            "trusted": paserk.pid(secret[32:]),
            "trusted_public": paserk.public_to_paserk(secret[32:]),
            "issuer_key_file": str(opts.key),
            "strangers": strangers,  # throw-away keys behind forged and unknown_key entries
        },
        "jti": "128 random bits per token from the OS CSPRNG, independent of the seed",
        "replays": {
            "safe_for_processes": list(range(1, REPLAY_SAFE_PROCESSES + 1)),
            "segments": len(segments),
            "min_gap": min(replay_gap(b - a) for a, b in segments),
        },
        "holders": {
            "count": opts.holders,
            "registered": len(registered),
            "not_enrolled": opts.holders - len(registered),
            "valid_verdicts": dict(Counter(people.expected)),
            "registry": REGISTRY,
        },
        "institution": {
            "issuer": opts.iss,
            "card": opts.card,
            "region": opts.region,
            "id": INSTITUTION_ID,
            "name": INSTITUTION_NAME,
        },
    }
