"""What one load-generating process measured, and how shards merge. Pure data.

The engine fills a :class:`ShardResult` per process; :func:`merge` adds them up
(histograms are merged bucket by bucket, never averaged) into the run's totals.
:meth:`ShardResult.to_dict` / :meth:`ShardResult.from_dict` move a result between processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.histogram import Histogram

MAX_EXAMPLES = 5


@dataclass
class SecondStats:
    """Completions during one second of the measured window (``second`` 0 is the first).

    ``p50_ns``/``p99_ns``/``max_ns`` summarise ``latency`` for progress lines. When
    ``processes`` > 1 they are the worst of that many processes' own figures: an upper
    bound on the merged percentile (the live line only; results use merged histograms).
    """

    second: int
    completed: int = 0
    errors: int = 0
    mismatches: int = 0
    latency: Histogram = field(default_factory=Histogram)
    p50_ns: int = 0
    p99_ns: int = 0
    max_ns: int = 0
    processes: int = 1
    partial: bool = False  # the stragglers after the window closed: not a whole second

    def add(self, other: SecondStats) -> None:
        """Fold *other* (same second, another process) into this one, histograms merged."""
        self.completed += other.completed
        self.errors += other.errors
        self.mismatches += other.mismatches
        self.latency.merge(other.latency)
        self.partial = self.partial or other.partial
        self.summarise()

    def summarise(self) -> None:
        """Set the p50/p99/max summary from the histogram."""
        values = self.latency.percentiles((50, 99, 100))
        self.p50_ns, self.p99_ns, self.max_ns = values[50], values[99], values[100]


def worst_of(parts: list[SecondStats]) -> SecondStats:
    """Progress summary of one second across processes: counts added, percentiles the worst."""
    out = SecondStats(parts[0].second, processes=len(parts))
    for part in parts:
        out.completed += part.completed
        out.errors += part.errors
        out.mismatches += part.mismatches
        out.p50_ns = max(out.p50_ns, part.p50_ns)
        out.p99_ns = max(out.p99_ns, part.p99_ns)
        out.max_ns = max(out.max_ns, part.max_ns)
    return out


@dataclass
class ShardResult:
    """Counters, histograms and examples from one process (or, after :func:`merge`, all).

    ``cpu_user_s``/``cpu_system_s``: the process's CPU time for the run (connect to drain).
    Timing histograms hold nanoseconds and cover only *measured* requests (intended at or
    after the end of warm-up). ``verdicts`` holds a latency histogram per
    ``(expected, actual)`` verdict pair; its total is how many responses had that pair.
    """

    latency: Histogram = field(default_factory=Histogram)
    service: Histogram = field(default_factory=Histogram)
    send_lag: Histogram = field(default_factory=Histogram)
    sent: int = 0
    completed: int = 0
    errors: int = 0
    mismatches: int = 0
    not_sent: int = 0
    waited_for_connection: int = 0
    warmup_completed: int = 0
    window_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    corpus_exhausted: bool = False
    verdicts: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    mismatch_examples: list[dict[str, Any]] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)
    seconds: list[SecondStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (histograms in their compact form)."""
        return {
            "latency": self.latency.to_dict(),
            "service": self.service.to_dict(),
            "send_lag": self.send_lag.to_dict(),
            "counters": {name: getattr(self, name) for name in _COUNTERS},
            "verdicts": [[e, a, h.to_dict()] for (e, a), h in sorted(self.verdicts.items())],
            "mismatch_examples": self.mismatch_examples,
            "error_examples": self.error_examples,
            "seconds": [
                [s.second, s.completed, s.errors, s.mismatches, s.latency.to_dict(), s.partial]
                for s in self.seconds
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardResult:
        """Inverse of :meth:`to_dict`."""
        out = cls(
            latency=Histogram.from_dict(data["latency"]),
            service=Histogram.from_dict(data["service"]),
            send_lag=Histogram.from_dict(data["send_lag"]),
            verdicts={(e, a): Histogram.from_dict(h) for e, a, h in data["verdicts"]},
            mismatch_examples=list(data["mismatch_examples"]),
            error_examples=list(data["error_examples"]),
            seconds=[
                _second(s, c, e, m, Histogram.from_dict(h), p)
                for s, c, e, m, h, p in data["seconds"]
            ],
        )
        for name in _COUNTERS:
            setattr(out, name, data["counters"][name])
        return out


def _second(
    number: int, completed: int, errors: int, mismatches: int, h: Histogram, partial: bool
) -> SecondStats:
    stats = SecondStats(number, completed, errors, mismatches, h, partial=partial)
    stats.summarise()
    return stats


_SUMMED = (
    "sent",
    "completed",
    "errors",
    "mismatches",
    "not_sent",
    "waited_for_connection",
    "warmup_completed",
    "cpu_user_s",
    "cpu_system_s",
)
_COUNTERS = (*_SUMMED, "window_s", "corpus_exhausted")


def merge(shards: list[ShardResult]) -> ShardResult:
    """One result holding every shard's observations.

    Counts, CPU seconds and histograms add up; ``window_s`` is the longest shard window (they run
    concurrently); ``corpus_exhausted`` is true if any shard ran out; examples are the
    first :data:`MAX_EXAMPLES` across shards; per-second stats are merged by second.
    """
    out = ShardResult()
    by_second: dict[int, SecondStats] = {}
    for shard in shards:
        out.latency.merge(shard.latency)
        out.service.merge(shard.service)
        out.send_lag.merge(shard.send_lag)
        for name in _SUMMED:
            setattr(out, name, getattr(out, name) + getattr(shard, name))
        out.window_s = max(out.window_s, shard.window_s)
        out.corpus_exhausted = out.corpus_exhausted or shard.corpus_exhausted
        for pair, histogram in shard.verdicts.items():
            out.verdicts.setdefault(pair, Histogram()).merge(histogram)
        out.mismatch_examples.extend(shard.mismatch_examples)
        out.error_examples.extend(shard.error_examples)
        for stats in shard.seconds:
            into = by_second.setdefault(stats.second, SecondStats(stats.second))
            into.add(stats)
    del out.mismatch_examples[MAX_EXAMPLES:]
    del out.error_examples[MAX_EXAMPLES:]
    out.seconds = [by_second[k] for k in sorted(by_second)]
    return out
