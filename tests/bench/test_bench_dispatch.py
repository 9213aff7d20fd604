"""Dispatcher and Connection without sockets: what ``Connection.send`` does with a write."""

from __future__ import annotations

from bench.connection import Connection
from bench.dispatch import Dispatcher, ShardPlan, clock
from bench.noop_server import RESPONSE
from bench.pacer import ConstantPacer

REQUEST = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nv4.x"


def dispatcher(closed_loop: bool = True, count: int = 10) -> Dispatcher:
    plan = ShardPlan(
        host="127.0.0.1",
        port=1,
        requests=[REQUEST] * count,
        expected=["ok"] * count,
        connections=1,
        pacer=None if closed_loop else ConstantPacer(1000.0),
        duration_ns=3600 * 1_000_000_000,
    )
    return Dispatcher(plan, None)


def refuse(data: bytes) -> int:
    raise ConnectionResetError("boom")


def test_a_failed_write_drops_the_connection_and_fails_the_request() -> None:
    run = dispatcher()
    conn = Connection(run, write=refuse)
    run.free.append(conn)
    run.begin(clock())
    run.release(clock())
    assert not conn.alive
    assert conn.index == -1 and run.inflight == 0
    assert run.sec_errors == 1
    assert run.r.error_examples == ["write failed: boom"]


def test_a_failed_write_when_refilling_is_settled_too() -> None:
    run = dispatcher()
    writes: list[bytes] = []
    conn = Connection(run, write=lambda data: writes.append(data) or len(data))
    run.free.append(conn)
    run.begin(clock())
    run.release(clock())
    assert writes == [REQUEST] and run.inflight == 1
    conn.write = refuse
    run.responses([(conn, RESPONSE)], clock())  # answered, then refilled: the write fails
    assert not conn.alive
    assert run.inflight == 0 and run.sec_completed == 1 and run.sec_errors == 1
    assert run.sent == 2


def test_what_the_socket_does_not_take_is_handed_to_the_engine() -> None:
    run = dispatcher(closed_loop=False)
    rests: list[bytes] = []
    conn = Connection(run, write=lambda data: 7, on_rest=lambda c: rests.append(c.out))
    run.free.append(conn)
    run.begin(clock() - 1_000_000)  # the first request is due
    run.release(clock())
    assert rests == [REQUEST[7:]]
    assert conn.alive and run.inflight == 1


class Answered:
    """A connection that writes nothing and whose request is in flight."""

    def __init__(self, run: Dispatcher, index: int, intended: int) -> None:
        self.conn = Connection(run)
        self.conn.index, self.conn.intended = index, intended


def test_one_poll_s_responses_are_book_kept_and_refilled() -> None:
    """Equal latencies in a row are recorded together; every response is counted once."""
    plan = ShardPlan(
        host="127.0.0.1",
        port=1,
        requests=[REQUEST] * 20,
        expected=["ok", "ok", "ok", "replayed", "ok", "ok"] + ["ok"] * 14,
        connections=6,
        pacer=None,
        duration_ns=3600 * 1_000_000_000,
    )
    run = Dispatcher(plan, None)
    start = clock()
    run.begin(start)
    run.next_due = 1 << 62  # started; the six requests below are in flight
    run.next_index, run.inflight = 6, 6
    sent = [start + 100, start + 100, start + 100, start + 100, start + 200, start + 100]
    conns = [Answered(run, i, t).conn for i, t in enumerate(sent)]
    now = start + 1_000
    run.responses([(conn, RESPONSE) for conn in conns], now)
    assert run.sec_completed == 6 and run.sec_mismatches == 1
    ok = run.sec_by_expected["ok"]
    assert ok.total == 5
    assert ok.counts[900] == 4 and ok.counts[800] == 1  # latencies 900 ns (x4) and 800 ns
    assert run.r.mismatch_examples[0]["expected"] == "replayed"
    # Closed loop: all six were refilled at once with the next six records.
    assert sorted(conn.index for conn in conns) == [6, 7, 8, 9, 10, 11]
    assert run.inflight == 6 and run.next_index == 12


def test_closed_loop_ticks_only_when_a_second_or_the_end_is_due() -> None:
    run = dispatcher()
    run.free.append(Connection(run))
    run.begin(clock())
    run.tick()  # releases the first request: the schedule has nothing more to say
    assert run.quiet_until == min(run.next_second, run.end_ns)
    run.stop_sending(clock(), exhausted=True)
    assert run.quiet_until == 0  # draining: every turn of the loop ticks again


def test_open_loop_ticks_on_every_turn() -> None:
    run = dispatcher(closed_loop=False)
    run.free.append(Connection(run))
    run.begin(clock())
    run.tick()
    assert run.quiet_until == 0
