"""One ``bench run``: settings in, merged measurements out, over one or more processes.

:func:`run` loads each process's shard of the corpus, pre-builds every request's bytes,
then either runs the engine in this process (``processes == 1``) or forks one worker per
shard. Workers connect, report ready, and all start at one instant on the shared monotonic
clock; each sends a per-second summary (merged here into the progress callback) and, at
the end, its :class:`~bench.shard.ShardResult` with histograms in their compact form. The
run's result is :func:`bench.shard.merge` of the shards: histograms merged, never averaged.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from bench.corpus_format import (
    CorpusEntry,
    CorpusError,
    read_corpus,
    read_manifest,
    shard_bounds,
)
from bench.dispatch import ShardPlan, clock
from bench.engine import EngineError, run_shard
from bench.http1 import build_request, split_target
from bench.pacer import shard_pacer
from bench.shard import SecondStats, ShardResult, merge, worst_of

NS = 1_000_000_000
_LOOPBACK = ("localhost", "::1")


class RunError(RuntimeError):
    """The run could not be carried out (bad target, unreadable corpus, worker failure)."""


class SettingsError(ValueError):
    """The settings are contradictory or out of range; the message names the setting."""


@dataclass(frozen=True)
class RunSettings:
    """What ``bench run`` was asked to do. ``rate=None`` means ``--max`` (closed loop)."""

    target: str
    credential: str
    rate: float | None
    duration_s: float
    connections: int
    processes: int = 1
    warmup_s: float = 0.0
    poisson: bool = False
    seed: int = 0
    drain_s: float = 2.0
    allow_remote: bool = False
    spin: bool = True

    def __post_init__(self) -> None:
        try:
            host, _, _ = split_target(self.target)
        except ValueError as err:
            raise SettingsError(str(err)) from err
        if not (self.allow_remote or host.startswith("127.") or host in _LOOPBACK):
            raise SettingsError(f"target host {host!r} is not loopback (pass --allow-remote)")
        if self.rate is not None and not self.rate > 0:
            raise SettingsError("rate must be positive")
        if self.duration_s <= 0 or self.warmup_s < 0 or self.drain_s < 0:
            raise SettingsError("duration must be positive, warmup and drain non-negative")
        if self.processes < 1 or self.connections < self.processes:
            raise SettingsError("need processes >= 1 and connections >= processes")


class RequestSource(Protocol):
    """Where the requests come from: a corpus directory, or a synthetic stand-in."""

    def load(self, shard: int, shards: int) -> tuple[list[CorpusEntry], int]:
        """The entries of one shard and the corpus index of its first entry."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance: what was sent (path, count, content hash)."""
        ...


@dataclass(frozen=True)
class CorpusSource:
    """A corpus directory (:mod:`bench.corpus_format`), or the slice ``[start, stop)`` of it.

    Process *shard* of *shards* gets the contiguous block :func:`shard_bounds` of the slice.
    """

    directory: Path
    start: int = 0
    stop: int | None = None

    def load(self, shard: int, shards: int) -> tuple[list[CorpusEntry], int]:
        stop = read_manifest(self.directory).count if self.stop is None else self.stop
        first, last = shard_bounds(stop - self.start, shard, shards)
        _, entries = read_corpus(self.directory, self.start + first, self.start + last)
        return entries, self.start + first

    def describe(self) -> dict[str, Any]:
        manifest = read_manifest(self.directory)
        return {
            "path": str(self.directory),
            "slice": [self.start, manifest.count if self.stop is None else self.stop],
            "count": manifest.count,
            "content_sha256": manifest.content_sha256,
            "verdicts": dict(manifest.verdicts),
        }


@dataclass(frozen=True)
class SyntheticSource:
    """``count`` copies of one request: for targets that ignore the body (calibration)."""

    count: int
    body: bytes = b"v4.public.calibrate"
    content_type: str = "text/plain"
    expected: str = "ok"

    def load(self, shard: int, shards: int) -> tuple[list[CorpusEntry], int]:
        first, stop = shard * self.count // shards, (shard + 1) * self.count // shards
        return [CorpusEntry(self.body, self.content_type, self.expected)] * (stop - first), first

    def describe(self) -> dict[str, Any]:
        return {"synthetic": True, "count": self.count, "expected": self.expected}


@dataclass
class RunOutcome:
    """The merged measurements of a run, with what produced them."""

    settings: RunSettings
    result: ShardResult
    corpus: dict[str, Any]
    started_at: float
    processes: list[dict[str, Any]] = field(default_factory=list)


def make_plan(settings: RunSettings, source: RequestSource, shard: int, shards: int) -> ShardPlan:
    """Load one shard and pre-build the exact bytes of each of its requests."""
    host, port, path = split_target(settings.target)
    entries, first = source.load(shard, shards)
    requests: list[bytes] = []
    last: CorpusEntry | None = None
    request = b""
    for entry in entries:
        if entry is not last:  # a synthetic shard repeats one entry: build its bytes once
            request = build_request(
                host, port, path, settings.credential, entry.content_type, entry.body
            )
            last = entry
        requests.append(request)
    pacer = None
    if settings.rate is not None:
        pacer = shard_pacer(
            settings.rate, shard, shards, poisson=settings.poisson, seed=settings.seed
        )
    return ShardPlan(
        host=host,
        port=port,
        requests=requests,
        expected=[entry.expected for entry in entries],
        connections=settings.connections // shards + (shard < settings.connections % shards),
        pacer=pacer,
        duration_ns=round(settings.duration_s * NS),
        warmup_ns=round(settings.warmup_s * NS),
        drain_ns=round(settings.drain_s * NS),
        spin=settings.spin,
        first_index=first,
    )


def run(
    settings: RunSettings,
    source: RequestSource,
    progress: Callable[[SecondStats], None] | None = None,
) -> RunOutcome:
    """Carry out the run; raises :class:`RunError` if it cannot be done at all."""
    try:
        corpus = source.describe()
        started = time.time()
        if settings.processes == 1:
            result = run_shard(make_plan(settings, source, 0, 1), progress=progress)
            shards = [result]
        else:
            shards = _run_processes(settings, source, progress)
            result = merge(shards)
    except (CorpusError, EngineError) as err:
        raise RunError(str(err)) from err
    per_process = [{"sent": s.sent, "completed": s.completed, "errors": s.errors} for s in shards]
    return RunOutcome(settings, result, corpus, started, per_process)


def _worker(pipe: Connection, settings: RunSettings, source: RequestSource, shard: int) -> None:
    def start_at() -> int:
        pipe.send(("ready", None))
        return int(pipe.recv()[1])

    def second(stats: SecondStats) -> None:
        summary = (stats.completed, stats.errors, stats.mismatches)
        pipe.send(("second", (stats.second, *summary, stats.p50_ns, stats.p99_ns, stats.max_ns)))

    try:
        plan = make_plan(settings, source, shard, settings.processes)
        result = run_shard(plan, start_at=start_at, progress=second)
        pipe.send(("result", result.to_dict()))
    except (CorpusError, EngineError, OSError) as err:
        pipe.send(("error", f"process {shard}: {err}"))
    finally:
        pipe.close()


def _run_processes(
    settings: RunSettings, source: RequestSource, progress: Callable[[SecondStats], None] | None
) -> list[ShardResult]:
    ctx = multiprocessing.get_context("fork")
    count = settings.processes
    pipes, procs = [], []
    for shard in range(count):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, settings, source, shard), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    limit = time.monotonic() + 120 + settings.warmup_s + settings.duration_s + settings.drain_s
    try:
        for pipe in pipes:
            _expect(pipe, "ready", limit)
        start = clock() + 50_000_000  # every worker is connected: start together in 50 ms
        for pipe in pipes:
            pipe.send(("start", start))
        return _collect(pipes, progress, limit)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def _expect(pipe: Connection, kind: str, limit: float) -> Any:
    if not pipe.poll(max(0.0, limit - time.monotonic())):
        raise RunError(f"a worker sent no {kind!r} in time")
    got, payload = pipe.recv()
    if got == "error":
        raise RunError(payload)
    if got != kind:
        raise RunError(f"worker protocol: expected {kind!r}, got {got!r}")
    return payload


def _collect(
    pipes: list[Connection], progress: Callable[[SecondStats], None] | None, limit: float
) -> list[ShardResult]:
    results: dict[int, ShardResult] = {}
    seconds: dict[int, list[SecondStats]] = {}
    while len(results) < len(pipes):
        waiting = [p for i, p in enumerate(pipes) if i not in results]
        ready = wait(waiting, timeout=max(0.0, limit - time.monotonic()))
        if not ready:
            raise RunError("workers did not finish in time")
        for pipe in ready:
            assert isinstance(pipe, Connection)
            try:
                kind, payload = pipe.recv()
            except EOFError as err:
                raise RunError("a worker exited without a result") from err
            if kind == "error":
                raise RunError(payload)
            if kind == "result":
                results[pipes.index(pipe)] = ShardResult.from_dict(payload)
            elif kind == "second":
                number, completed, errors, mismatches, p50, p99, top = payload
                part = SecondStats(number, completed, errors, mismatches)
                part.p50_ns, part.p99_ns, part.max_ns = p50, p99, top
                seconds.setdefault(number, []).append(part)
                if len(seconds[number]) == len(pipes) and progress is not None:
                    progress(worst_of(seconds.pop(number)))
    return [results[i] for i in range(len(pipes))]
