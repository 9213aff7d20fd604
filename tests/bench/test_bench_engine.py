"""The engine against real loopback servers, in short bounded runs.

Counts are exact because the pacer is: a run of D seconds at R rps releases exactly the
requests intended before D. No test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import noop_server, results, runner
from bench.corpus_format import CorpusEntry, write_corpus
from bench.pacer import ConstantPacer
from bench.shard import SecondStats


@pytest.fixture(scope="module")
def noop() -> Iterator[str]:
    server = noop_server.start_in_process()
    yield server.url
    server.stop()


class EchoVerdictServer:
    """Answers a body ``"<verdict>:<n>"`` with that verdict, and records every body.

    ``http_NNN`` verdicts come back as status NNN; ``close`` drops the connection;
    ``slow`` answers after 20 ms.
    """

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> EchoVerdictServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/verify"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.bodies.append(body)
                verdict = body.split(b":")[0].decode()
                if verdict == "close":
                    writer.close()
                    return
                if verdict == "slow":
                    await asyncio.sleep(0.02)
                if verdict.startswith("http_"):
                    status, payload = verdict[5:], b'{"error":"x"}'
                else:
                    status, payload = "200", b'{"valid":false,"reason":"' + verdict.encode() + b'"}'
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def settings(url: str, **overrides: object) -> runner.RunSettings:
    base: dict[str, object] = {
        "target": url,
        "credential": "scanner-test",
        "rate": 500.0,
        "duration_s": 0.4,
        "connections": 4,
        "drain_s": 5.0,
    }
    base.update(overrides)
    return runner.RunSettings(**base)  # type: ignore[arg-type]


def corpus(tmp_path: Path, entries: list[CorpusEntry]) -> runner.CorpusSource:
    write_corpus(tmp_path, entries)
    return runner.CorpusSource(tmp_path)


def test_every_request_answered_by_the_noop_server(noop: str, tmp_path: Path) -> None:
    source = corpus(tmp_path, [CorpusEntry(b"t%d" % i, "text/plain", "ok") for i in range(500)])
    seconds: list[SecondStats] = []
    outcome = runner.run(settings(noop), source, seconds.append)
    r = outcome.result
    assert seconds == []  # a 0.4 s window has no whole second to report
    assert [s.partial for s in r.seconds] == [True]
    expected = ConstantPacer(500.0).count_before(400_000_000)  # 200
    assert r.sent == r.completed == expected == 200
    assert (r.errors, r.mismatches, r.not_sent, r.corpus_exhausted) == (0, 0, 0, False)
    assert r.latency.total == r.service.total == r.send_lag.total == expected
    assert {pair: h.total for pair, h in r.verdicts.items()} == {("ok", "ok"): expected}
    assert sum(s.completed for s in r.seconds) == expected
    assert r.latency.min >= r.service.min > 0  # latency counts from the intended time
    document = results.build(outcome)
    assert document["requests"]["completed"] == expected
    assert document["achieved_rps"] == pytest.approx(500.0)


def test_wrong_expected_verdicts_are_counted_as_mismatches(noop: str, tmp_path: Path) -> None:
    # The no-op server says "ok" to everything; every 3rd entry expects "replayed".
    entries = [
        CorpusEntry(b"t%d" % i, "text/plain", "replayed" if i % 3 == 0 else "ok")
        for i in range(500)
    ]
    r = runner.run(settings(noop), corpus(tmp_path, entries)).result
    wrong = sum(1 for i in range(200) if i % 3 == 0)
    assert r.mismatches == wrong
    assert r.verdicts[("replayed", "ok")].total == wrong
    assert r.verdicts[("ok", "ok")].total == 200 - wrong
    assert len(r.mismatch_examples) == 5
    first = r.mismatch_examples[0]
    assert (first["index"], first["expected"], first["actual"]) == (0, "replayed", "ok")
    assert '"reason":"ok"' in first["response"]


def test_corpus_exhaustion_stops_the_run_and_says_so(noop: str, tmp_path: Path) -> None:
    source = corpus(tmp_path, [CorpusEntry(b"t%d" % i, "text/plain", "ok") for i in range(50)])
    outcome = runner.run(settings(noop, rate=1000.0, duration_s=2.0), source)
    r = outcome.result
    assert r.corpus_exhausted
    assert r.sent == r.completed == 50
    assert r.window_s < 2.0
    reasons = results.validity(outcome)
    assert any("corpus exhausted" in reason for reason in reasons)
    assert results.build(outcome)["valid"] is False


def test_oracle_sees_reasons_and_statuses(tmp_path: Path) -> None:
    kinds = ["ok", "expired", "http_401", "bad_signature"]
    entries = [CorpusEntry(b"%s:%d" % (kinds[i % 4].encode(), i), "text/plain", kinds[i % 4])
               for i in range(300)]  # fmt: skip
    entries[7] = CorpusEntry(b"expired:7", "text/plain", "ok")  # the oracle must catch this
    with EchoVerdictServer() as server:
        r = runner.run(settings(server.url), corpus(tmp_path, entries)).result
        # Each of the first 200 exactly once (order across connections is the server's).
        assert sorted(server.bodies) == sorted(e.body for e in entries[:200])
    assert r.mismatches == 1
    assert r.mismatch_examples[0]["index"] == 7
    assert r.verdicts[("ok", "expired")].total == 1
    assert r.verdicts[("http_401", "http_401")].total == 50
    assert r.verdicts[("expired", "expired")].total == 50


def test_warmup_is_sent_but_not_measured(noop: str, tmp_path: Path) -> None:
    source = corpus(tmp_path, [CorpusEntry(b"t%d" % i, "text/plain", "ok") for i in range(500)])
    r = runner.run(settings(noop, warmup_s=0.2, duration_s=0.2), source).result
    assert r.warmup_completed == 100
    assert r.sent == r.completed == r.latency.total == 100


def test_closed_loop_max(noop: str) -> None:
    outcome = runner.run(
        settings(noop, rate=None, duration_s=0.3), runner.SyntheticSource(count=10**6)
    )
    r = outcome.result
    assert r.completed > 0
    assert r.errors == r.mismatches == 0
    assert r.send_lag.total == 0
    assert r.service == r.latency
    assert results.build(outcome)["mode"] == "closed-loop max"


def test_closed_loop_exhausts_the_corpus_exactly(noop: str, tmp_path: Path) -> None:
    source = corpus(tmp_path, [CorpusEntry(b"t%d" % i, "text/plain", "ok") for i in range(1000)])
    r = runner.run(settings(noop, rate=None, duration_s=30.0, connections=8), source).result
    assert r.corpus_exhausted
    assert r.sent == r.completed == 1000  # each record once, none lost at the end
    assert r.errors == 0


def test_sleeping_between_sends_loses_nothing(noop: str, tmp_path: Path) -> None:
    source = corpus(tmp_path, [CorpusEntry(b"t%d" % i, "text/plain", "ok") for i in range(500)])
    r = runner.run(settings(noop, rate=200.0, spin=False), source).result
    assert r.sent == r.completed == 80
    assert r.errors == r.mismatches == r.not_sent == 0


def test_poisson_schedule(noop: str, tmp_path: Path) -> None:
    source = corpus(tmp_path, [CorpusEntry(b"t%d" % i, "text/plain", "ok") for i in range(900)])
    r = runner.run(settings(noop, poisson=True, seed=3), source).result
    assert r.sent == r.completed > 0
    assert r.errors == 0


def test_processes_shard_the_corpus_and_merge(tmp_path: Path) -> None:
    entries = [CorpusEntry(b"ok:%d" % i, "text/plain", "ok") for i in range(400)]
    with EchoVerdictServer() as server:
        outcome = runner.run(settings(server.url, processes=2), corpus(tmp_path, entries))
        received = sorted(server.bodies)
    r = outcome.result
    # Each process runs 250 rps for 0.4 s from its own block of 200 entries.
    expected = sorted([e.body for e in entries[0:100]] + [e.body for e in entries[200:300]])
    assert received == expected  # every token sent once, from the right shard
    assert r.sent == r.completed == r.latency.total == 200
    assert [p["completed"] for p in outcome.processes] == [100, 100]


def test_lost_connections_are_errors_and_replaced(tmp_path: Path) -> None:
    entries = [
        CorpusEntry(b"close:%d" % i if i % 10 == 5 else b"ok:%d" % i, "text/plain", "ok")
        for i in range(500)
    ]
    with EchoVerdictServer() as server:
        r = runner.run(settings(server.url), corpus(tmp_path, entries)).result
    assert r.errors == 20
    assert r.completed == 180
    assert r.mismatches == 0
    assert any("connection lost" in e for e in r.error_examples)


def test_waiting_for_a_connection_counts_in_latency_and_invalidates(tmp_path: Path) -> None:
    # One connection, a request every 5 ms, each answered after 20 ms: requests queue.
    entries = [CorpusEntry(b"slow:%d" % i, "text/plain", "slow") for i in range(100)]
    source = corpus(tmp_path, entries)
    with EchoVerdictServer() as server:
        outcome = runner.run(
            settings(server.url, rate=200.0, duration_s=0.1, connections=1), source
        )
    r = outcome.result
    assert r.completed == 20
    assert r.waited_for_connection > 0
    assert r.latency.max > r.service.max  # the wait for the connection is in latency
    assert r.send_lag.max > 0
    reasons = " ".join(results.validity(outcome))
    assert "generator fell behind" in reasons
    assert "waited for a free connection" in reasons


def test_bodies_larger_than_the_socket_buffer_are_sent_whole(tmp_path: Path) -> None:
    big = b"ok:" + b"x" * (12 << 20)  # 12 MiB: more than one write() on loopback takes
    entries = [CorpusEntry(big if i in (1, 4) else b"ok:%d" % i, "text/plain", "ok")
               for i in range(8)]  # fmt: skip
    with EchoVerdictServer() as server:
        outcome = runner.run(settings(server.url, rate=50.0, duration_s=0.12),
                             corpus(tmp_path, entries))  # fmt: skip
        assert sorted(map(len, server.bodies)) == sorted(len(e.body) for e in entries[:6])
    assert outcome.result.completed == 6 and outcome.result.errors == 0


def test_unreachable_target_is_a_run_error(tmp_path: Path) -> None:
    server = noop_server.start_in_process()
    url = server.url
    server.stop()  # nothing listens there any more
    with pytest.raises(runner.RunError, match="cannot connect"):
        runner.run(settings(url), runner.SyntheticSource(10))


def test_remote_targets_need_consent() -> None:
    with pytest.raises(runner.SettingsError, match="loopback"):
        settings("http://example.com/v1/verify")
