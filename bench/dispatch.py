"""Who sends what, when: the engine's scheduling, free of socket code.

A :class:`Dispatcher` owns the schedule (pacer offsets against the clock), the FIFO of due
requests waiting for a connection, and the free connections of one process. It reaches a
connection only through ``conn.send(bytes)``, ``conn.drop`` and the
``conn.index/intended/sent`` fields, so tests can drive it with fake connections;
``bench.engine`` supplies the real ones and runs the loop: ``timeout = tick()``, wait for
sockets at most that long, hand each response to its connection, ``refill()``. What was
measured is kept by the :class:`~bench.bookkeeping.Bookkeeping` half of the class.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench.bookkeeping import Bookkeeping, Conn
from bench.histogram import Histogram
from bench.pacer import Pacer
from bench.shard import SecondStats, ShardResult

clock = time.monotonic_ns  # CLOCK_MONOTONIC: one clock for every process on the host
SPIN_NS = 2_000_000  # closer than this to the next due time, stop trusting ms timers
IDLE_MARGIN_NS = 200_000  # no-spin mode wakes this early: covers the kernel's timer slack
QUIET_POLL_S = 0.001  # how long the loop waits for sockets when the clock needs nothing sooner
NS = 1_000_000_000
_NEVER = 1 << 62


@dataclass(frozen=True)
class ShardPlan:
    """Everything one process needs: where to connect, what to send, how fast, how long.

    ``requests[i]`` is the complete pre-built request for corpus record ``first_index + i``
    and ``expected[i]`` its expected verdict. ``pacer=None`` means closed loop (``--max``).
    ``spin=False`` sleeps in ``select`` between sends when nothing is due (see the engine).
    """

    host: str
    port: int
    requests: Sequence[bytes]
    expected: Sequence[str]
    connections: int
    pacer: Pacer | None
    duration_ns: int
    warmup_ns: int = 0
    drain_ns: int = 2_000_000_000
    first_index: int = 0
    spin: bool = True


class Dispatcher(Bookkeeping):
    """Mutable state of one process's run; see the module docstring."""

    # Slots: the hot path reads these attributes several times per request.
    __slots__ = (
        "requests", "expected", "count", "offsets", "cache", "last_response", "last_verdict",
        "free", "backlog", "sending", "finished", "next_index", "base", "end_ns",
        "deadline", "next_due", "service", "lag", "idle_wait", "quiet_until",
    )  # fmt: skip

    def __init__(self, plan: ShardPlan, progress: Callable[[SecondStats], None] | None) -> None:
        self.plan, self.progress = plan, progress
        self.requests, self.expected, self.count = plan.requests, plan.expected, len(plan.requests)
        self.closed_loop = plan.pacer is None
        self.offsets: Iterator[int] = iter(()) if plan.pacer is None else plan.pacer.offsets()
        self.cache: dict[bytes, str] = {}  # response bytes -> verdict
        self.last_response, self.last_verdict = b"", ""  # the cache's most recent hit
        self.free: list[Any] = []
        self.backlog: deque[tuple[int, int]] = deque()  # (index, intended) due, no connection
        self.sending = self.finished = False
        self.next_index = self.inflight = self.sent = 0
        self.base = self.measure_start = self.end_ns = self.stop_ns = self.deadline = _NEVER
        self.next_due = self.next_second = _NEVER
        self.quiet_until = 0  # closed loop: tick() has nothing to do before this time
        self.r = ShardResult()
        self.service, self.lag = self.r.service, self.r.send_lag
        # Latency of this second's responses, per expected verdict (matches) and mismatched.
        self.sec_by_expected: defaultdict[str, Histogram] = defaultdict(Histogram)
        self.sec_mismatched = Histogram()
        self.chores: deque[Iterator[None]] = deque()
        # Set by the engine in no-spin mode: block up to N seconds until a socket is readable.
        self.idle_wait: Callable[[float], object] | None = None
        self.sec_completed = self.sec_errors = self.sec_mismatches = self.warmup_completed = 0

    def begin(self, start_ns: int) -> None:
        """Start the schedule at *start_ns* (the :data:`clock`)."""
        plan = self.plan
        self.base, self.sending = start_ns, True
        self.measure_start = start_ns + plan.warmup_ns
        self.end_ns = self.stop_ns = self.measure_start + plan.duration_ns
        self.next_second = self.measure_start + NS
        self.next_due = start_ns if self.closed_loop else start_ns + next(self.offsets)

    def tick(self) -> float:
        """Release due requests, close seconds, end the run; return how long the loop may
        block waiting for sockets (seconds; 0 = poll and come straight back, i.e. spin)."""
        now = clock()
        if now >= self.next_due:
            self.release(now)
        if self.sending and now >= self.end_ns:
            self.stop_sending(self.end_ns)
        if now >= self.next_second:
            self.rotate(now)
        if not self.sending and (self.inflight == 0 == len(self.backlog) or now >= self.deadline):
            self.finish()
            return 0.0
        self.quiet_until = 0
        if self.chores:
            self.run_chores()  # one slice; come back soon for the next
            return 0.0
        if not self.sending:
            return QUIET_POLL_S  # draining: nothing needs precision
        now = clock()
        if self.closed_loop and self.next_due == _NEVER:  # started: only the next second or
            self.quiet_until = min(self.next_second, self.end_ns)  # the end needs a tick
            return max(0, min(QUIET_POLL_S, (self.quiet_until - now) / NS))
        due_in = self.next_due - now
        if due_in > SPIN_NS:  # epoll sleeps in whole milliseconds: wake early, then spin
            return max(0, min(due_in - SPIN_NS, self.next_second - now, self.end_ns - now)) / NS
        if due_in > IDLE_MARGIN_NS and self.idle_wait is not None:
            self.idle_wait((due_in - IDLE_MARGIN_NS) / NS)
        return 0.0

    def release(self, now: int) -> None:
        """Send (or queue) every request whose intended time is at or before *now*."""
        if self.closed_loop:
            self.next_due = _NEVER
            while self.free and self.sending:
                self.send_next(self.free.pop(), now)
            return
        due, free = self.next_due, self.free
        while due <= now:
            if due >= self.end_ns:
                self.stop_sending(self.end_ns)
                return
            if self.next_index >= self.count:
                self.stop_sending(max(due, self.measure_start), exhausted=True)
                return
            index = self.next_index
            self.next_index = index + 1
            if free:
                self.send(free.pop(), index, due)
            else:
                self.backlog.append((index, due))
                if due >= self.measure_start:
                    self.r.waited_for_connection += 1
            due = self.base + next(self.offsets)
        self.next_due = due

    def send(self, conn: Conn, index: int, intended: int) -> None:
        """Open loop: write request *index* on the idle *conn*, stamped at the write."""
        now = clock()
        conn.index, conn.intended, conn.sent = index, intended, now
        self.inflight += 1
        if intended >= self.measure_start:
            self.sent += 1
            self.lag.record(now - intended)
        conn.send(self.requests[index])

    def responses(self, batch: list[tuple[Any, bytes]], now: int) -> None:
        """What each connection read in one poll, which returned at *now*: the per-response
        hot path, in one call per poll.

        For each response: recognise the verdict (the same bytes as the last response,
        else :meth:`Connection.recognise`), free the connection (open loop: the next due
        request goes out on it at once; closed loop: it joins this poll's refill), then
        book-keep latency, service time and the oracle's verdict. Closed loop: the freed
        connections are refilled at the end, together.
        """
        last, last_verdict = self.last_response, self.last_verdict
        closed, start = self.closed_loop, self.measure_start
        expected_of, by_expected = self.expected, self.sec_by_expected
        refills: list[Any] = []  # closed loop: the connections this poll frees
        answered = measured = 0
        # Equal latencies in a row are recorded once, with their count: in closed loop the
        # requests of one refill share their send time, and often come back in one poll.
        same, same_expected, times = -1, "", 0
        for conn, data in batch:
            if data == last and not conn.buf:  # a memcmp: cheaper than hashing for the cache
                verdict = last_verdict
            else:
                recognised = conn.recognise(data)
                if recognised is None:
                    continue
                data, verdict = recognised
                last, last_verdict = data, verdict
            index = conn.index
            if index < 0:
                self.protocol_error(conn, "response with no request in flight")
                continue
            answered += 1
            conn.index = -1
            intended = conn.intended
            # Free the connection first: the next request goes out before book-keeping.
            if closed:
                refills.append(conn)
            else:
                sent = conn.sent
                if now >= self.next_due:
                    self.release(now)
                if self.backlog:
                    next_index, next_intended = self.backlog.popleft()
                    self.send(conn, next_index, next_intended)
                else:
                    self.free.append(conn)
                if intended >= start:
                    self.service.record(now - sent)
            if intended >= start:
                measured += 1
                expected = expected_of[index]
                if verdict != expected:
                    self.mismatch(index, expected, verdict, data, now - intended)
                elif now - intended == same and expected == same_expected:
                    times += 1
                else:
                    if times:
                        by_expected[same_expected].record(same, times)
                    same, same_expected, times = now - intended, expected, 1
        if times:
            by_expected[same_expected].record(same, times)
        self.last_response, self.last_verdict = last, last_verdict
        self.inflight -= answered
        self.sec_completed += measured
        self.warmup_completed += answered - measured
        if refills:
            self.refill(refills)

    def refill(self, refills: list[Any]) -> None:
        """Closed loop: send on every connection freed by this poll's responses.

        Like wrk, the writes go out back to back after the iteration's reads, with one
        clock reading for the batch, rather than one write between each pair of reads.
        """
        now = clock()
        requests, sending = self.requests, self.sending
        stop = self.count if sending else 0  # no record at or past this index goes out
        index = first = self.next_index
        # send_next() inlined: this loop is the closed-loop hot path. Every connection here
        # was answered in this poll, and nothing has dropped it since.
        for conn in refills:
            if index >= stop:  # the corpus is used up
                self.free.append(conn)
                continue
            conn.index, conn.intended = index, now  # (conn.sent: open loop only)
            data = requests[index]
            try:  # Connection.send() inlined
                written = conn.write(data)
            except OSError as err:
                conn.drop(f"write failed: {err}")  # fails it: inflight is settled below
            else:
                if written != len(data):
                    conn.rest(data, written)
            index += 1
        self.next_index = index
        self.inflight += index - first
        if now >= self.measure_start:
            self.sent += index - first
        if sending and index >= stop:
            self.stop_sending(max(now, self.measure_start), exhausted=True)

    def send_next(self, conn: Conn, now: int) -> None:
        """Closed loop: send the next corpus record on *conn* at once (or free it)."""
        index = self.next_index
        if index >= self.count or not self.sending:
            self.free.append(conn)
            if self.sending:
                self.stop_sending(max(now, self.measure_start), exhausted=True)
            return
        self.next_index = index + 1
        conn.index, conn.intended, conn.sent = index, now, now
        self.inflight += 1
        if now >= self.measure_start:
            self.sent += 1
        conn.send(self.requests[index])

    def stop_sending(self, at_ns: int, exhausted: bool = False) -> None:
        """Release no new requests from now on; the queue still drains until the deadline.

        Queued requests were due inside the window, so they are still sent (dropping them
        would hide exactly the slowest requests); any left at the deadline count as not sent.
        """
        if not self.sending:
            return
        self.sending, self.next_due = False, _NEVER
        self.quiet_until = 0  # draining: tick on every turn of the loop
        self.stop_ns = min(at_ns, self.end_ns)
        self.r.corpus_exhausted = exhausted
        self.deadline = clock() + self.plan.drain_ns

    def add(self, conn: Conn) -> None:
        """A new (or replacement) connection is open and idle."""
        conn.index = -1
        if self.closed_loop and self.sending:
            self.send_next(conn, clock())
        else:
            self.free.append(conn)

    def protocol_error(self, conn: Conn, message: str) -> None:
        """Unreadable response: fail the request and drop the connection."""
        self.fail(conn, f"protocol error: {message}")
        conn.drop(f"protocol error: {message}")

    def lost(self, conn: Conn, message: str) -> None:
        """*conn* is gone: fail its request (if any) and forget it."""
        self.fail(conn, message)
        if conn in self.free:
            self.free.remove(conn)

    def finish(self) -> None:
        """Count what never went out or never came back, close the last second."""
        self.r.not_sent += sum(1 for _, due in self.backlog if due >= self.measure_start)
        self.backlog.clear()
        if self.sec_completed or self.sec_errors:
            self._close_second(partial=True)
        self.run_chores(all_of_them=True)
        if self.inflight:
            self.sec_errors += self.inflight
            self.r.error_examples.append(f"{self.inflight} requests unanswered after drain")
        self.sending, self.finished = False, True
