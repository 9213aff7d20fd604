"""What one process measured, kept while it runs: the :class:`Dispatcher`'s book-keeping.

Per-request records go into per-second histograms (one per expected verdict, plus one for
mismatches). When a second closes they are swapped for fresh ones and merged into the
totals by *chores*: generators that do a 1024-bucket slice per step, one step per tick, so
no single callback stalls the schedule. Split from ``bench.dispatch`` to keep the
scheduling code on its own; both halves share the dispatcher's slots.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from bench.histogram import Histogram
from bench.shard import MAX_EXAMPLES, SecondStats, ShardResult

NS = 1_000_000_000


class Conn(Protocol):
    """What the dispatcher needs from a connection (``bench.connection.Connection``).

    ``index`` is the corpus-local index of the request in flight (-1 when idle); ``send``
    writes a request (what the socket does not take at once goes out later; a failed
    write drops the connection); the closed loop's refill does the same with ``write``
    (the raw write: bytes taken, or OSError) and ``rest`` (hand over what was not taken);
    ``drop`` closes the connection, after which ``alive`` is false.
    """

    index: int
    intended: int
    sent: int
    alive: bool
    write: Callable[[bytes], int]

    def send(self, data: bytes) -> None: ...

    def rest(self, data: bytes, written: int) -> None: ...

    def drop(self, reason: str) -> None: ...


class Bookkeeping:
    """Mixin for :class:`bench.dispatch.Dispatcher`: seconds, chores, mismatches, failures."""

    __slots__ = (
        "plan", "progress", "r", "closed_loop", "inflight", "sent", "measure_start",
        "stop_ns", "next_second", "sec_by_expected", "sec_mismatched", "chores",
        "sec_completed", "sec_errors", "sec_mismatches", "warmup_completed",
    )  # fmt: skip
    plan: Any
    progress: Callable[[SecondStats], None] | None
    r: ShardResult
    closed_loop: bool
    inflight: int
    sent: int
    measure_start: int
    stop_ns: int
    next_second: int
    sec_by_expected: defaultdict[str, Histogram]
    sec_mismatched: Histogram
    chores: deque[Iterator[None]]
    sec_completed: int
    sec_errors: int
    sec_mismatches: int
    warmup_completed: int

    def rotate(self, now: int) -> None:
        """Close every finished second of the measured window."""
        while now >= self.next_second:
            self._close_second()
            self.next_second += NS

    def _close_second(self, partial: bool = False) -> None:
        # Swap in fresh per-second histograms now; merge the closed ones in small steps
        # (chores, run one step per tick) so no single callback stalls the schedule.
        stats = SecondStats(
            len(self.r.seconds),
            self.sec_completed,
            self.sec_errors,
            self.sec_mismatches,
            partial=partial,
        )
        self.chores.append(self._merge_second(stats, self.sec_by_expected, self.sec_mismatched))
        self.sec_by_expected, self.sec_mismatched = defaultdict(Histogram), Histogram()
        self.sec_completed = self.sec_errors = self.sec_mismatches = 0
        self.r.seconds.append(stats)

    def _merge_second(
        self, stats: SecondStats, by_expected: dict[str, Histogram], mismatched: Histogram
    ) -> Iterator[None]:
        for expected, histogram in by_expected.items():
            yield from stats.latency.merge_steps(histogram)
            total = self.r.verdicts.setdefault((expected, expected), Histogram())
            yield from total.merge_steps(histogram)
        yield from stats.latency.merge_steps(mismatched)
        yield from self.r.latency.merge_steps(stats.latency)
        summary: dict[float, int] = {}
        yield from stats.latency.percentile_steps((50, 99, 100), summary)
        stats.p50_ns, stats.p99_ns, stats.max_ns = summary[50], summary[99], summary[100]
        if self.progress is not None and not stats.partial:
            self.progress(stats)

    def run_chores(self, all_of_them: bool = False) -> None:
        """One step of deferred book-keeping (or all of it, once the clock no longer matters)."""
        while self.chores:
            try:
                next(self.chores[0])
            except StopIteration:
                self.chores.popleft()
                continue
            if not all_of_them:
                return

    def mismatch(
        self, index: int, expected: str, actual: str, response: bytes, latency: int
    ) -> None:
        """Count a response whose verdict differs from the corpus; keep the first few."""
        self.sec_mismatches += 1
        self.sec_mismatched.record(latency)
        self.r.verdicts.setdefault((expected, actual), Histogram()).record(latency)
        if len(self.r.mismatch_examples) < MAX_EXAMPLES:
            self.r.mismatch_examples.append(
                {
                    "index": self.plan.first_index + index,
                    "expected": expected,
                    "actual": actual,
                    "response": response[:300].decode("latin-1"),
                }
            )

    def fail(self, conn: Conn, message: str) -> None:
        """The request in flight on *conn* got no usable response."""
        if conn.index < 0:
            return
        self.inflight -= 1
        if conn.intended >= self.measure_start:
            self.sec_errors += 1
            if len(self.r.error_examples) < MAX_EXAMPLES:
                self.r.error_examples.append(message)
        conn.index = -1

    def connect_failed(self, message: str) -> None:
        """A replacement connection could not be opened (the engine retries)."""
        self.sec_errors += 1
        if len(self.r.error_examples) < MAX_EXAMPLES:
            self.r.error_examples.append(message)

    def result(self) -> ShardResult:
        """The finished :class:`ShardResult` of this process."""
        r = self.r
        r.sent = self.sent
        r.completed = sum(s.completed for s in r.seconds)
        r.errors = sum(s.errors for s in r.seconds) + self.sec_errors
        r.mismatches = sum(s.mismatches for s in r.seconds)
        r.warmup_completed = self.warmup_completed
        r.window_s = max(0, self.stop_ns - self.measure_start) / NS
        if self.closed_loop:
            r.service = Histogram.merged([r.latency])
        return r
