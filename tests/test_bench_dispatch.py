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
    conn.received(RESPONSE, clock())  # answered: the connection goes to the refill batch
    run.refill()
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
