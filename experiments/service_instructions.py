"""User-space instructions per request of ``verifier serve``: a count, not a timing.

Sets up what ``scripts/perf`` sets up (root and issuer keys, a signed trust list, a private
``redis-server`` (``tests/support/redis_server.py``: no persistence, ``noeviction``), the
institution ``bench-hospital`` and one scanner, a ``bench corpus`` of 10 000 holders imported
with ``verifier registry import``), all with the CLI of the source tree under test, then
starts that tree's ``verifier serve`` (one worker, which serves in the process started:
``workers == 1`` runs the loop in the parent in every tree so far) under
``valgrind --tool=callgrind --trace-children=yes`` and sends it the first N, then (a fresh
Redis, service and corpus) the first 3N requests of the corpus from a closed loop of keep-alive
connections in this process. Instructions per request = (Ir(3N) - Ir(N)) / 2N: start-up and
shut-down cancel out, system calls are not counted. Every answer is checked against the
verdict the corpus expects (the ``reason`` of a 200, else ``http_<status>``).

The service runs with ``VERIFIER_AUTH_CACHE_SECONDS`` and ``VERIFIER_TRUST_POLL_SECONDS`` at
3600, so that its per-wall-second work (cache refreshes, trust-file polls) does not grow with
callgrind's ~50x slowdown, and ``VERIFIER_STORE_DEADLINE_MS`` at 5000 (under callgrind a
Redis call can take more than the default 50 ms: a 503). Work a tree does per wall second
that no setting stops still counts, in proportion to each run's wall time (printed): since
the identity checks (verifier/store/identity.py) the Redis store re-reads a node's INFO once
a second while claims flow, ~0.75 M instructions a check, so ~3-8 k per request at
callgrind's ~150 requests/s (about 0.1 k at the real rate); repeat runs differ by that much.

    python experiments/service_instructions.py [-n 1500] [--connections 16] [--out DIR] [--profile]
    python experiments/service_instructions.py --tree /tmp/before --python /tmp/before-venv/bin/python
    python experiments/service_instructions.py --compare A/summary.json B/summary.json

``--tree`` runs another checkout (first on ``PYTHONPATH``; ``--python``: an interpreter that has
its dependencies). ``--out DIR`` keeps the callgrind files and writes ``summary.json``: the
per-request self and inclusive Ir of every C function (from ``callgrind_annotate``, the 3N run
minus the N run) and, with ``--profile``, a cProfile of the serving process (no valgrind, the
same N and 3N runs, process CPU time): calls and seconds per request of every Python function.
``--compare`` prints where two summaries differ most per request. Needs ``valgrind`` and
``redis-server`` on ``PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests" / "support"))

from redis_server import RedisServer  # noqa: E402

HOLDERS = 10_000
SEED = 1
# Per-wall-second work would grow with callgrind's slowdown; a store call may take > 50 ms.
SETTINGS = {
    "VERIFIER_AUTH_CACHE_SECONDS": "3600",
    "VERIFIER_TRUST_POLL_SECONDS": "3600",
    "VERIFIER_STORE_DEADLINE_MS": "5000",
}
# `verifier` without its console script (every tree so far has verifier.cli.main:main).
VERIFIER = "import sys; from verifier.cli.main import main; sys.exit(main(sys.argv[1:]))"
PROFILED = """\
import cProfile, sys, time
from verifier.cli.main import main
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    code = main(sys.argv[2:])
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
sys.exit(code)
"""
_ANNOTATED = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*?)\s*$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Tree:
    """A source tree and the interpreter that runs its CLI and its service."""

    path: Path
    python: str

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.path), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONHASHSEED"] = "0"
        env.update(extra or {})
        return env

    def run(self, args: list[str], env: Mapping[str, str], cwd: Path) -> str:
        done = subprocess.run(
            [self.python, *args], env=dict(env), cwd=cwd, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args[:3])} … failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def verifier(self, args: list[str], env: Mapping[str, str], cwd: Path) -> str:
        return self.run(["-c", VERIFIER, *args], env, cwd)

    def check_imports(self) -> None:
        """The tree's own ``verifier`` and ``bench`` must be the ones imported."""
        code = "import verifier, bench; print(verifier.__file__); print(bench.__file__)"
        for name in self.run(["-c", code], self.env(), self.path).split():
            if not Path(name).resolve().is_relative_to(self.path):
                raise SystemExit(f"{self.python} imports {name}, not the tree {self.path}")


@dataclass(frozen=True)
class Entry:
    body: bytes
    content_type: str
    expected: str


def read_corpus(directory: Path, count: int) -> list[Entry]:
    """The first *count* records of a corpus (format 1, see bench/corpus_format.py)."""
    data = (directory / "requests.bin").read_bytes()
    if not data.startswith(b"QRBENCH1"):
        raise SystemExit(f"{directory}: not a format-1 corpus")
    entries: list[Entry] = []
    offset, header = 8, struct.Struct("<IBB")
    while len(entries) < count:
        body_len, ctype_len, expected_len = header.unpack_from(data, offset)
        start = offset + header.size
        ctype = data[start : start + ctype_len].decode("ascii")
        expected = data[start + ctype_len : start + ctype_len + expected_len].decode("ascii")
        offset = start + ctype_len + expected_len + body_len
        entries.append(Entry(data[offset - body_len : offset], ctype, expected))
    return entries


def build_request(port: int, credential: str, entry: Entry) -> bytes:
    """The bytes `bench run` sends for *entry* (bench.http1.build_request)."""
    head = (
        f"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {credential}\r\nContent-Type: {entry.content_type}\r\n"
        f"Content-Length: {len(entry.body)}\r\n\r\n"
    )
    return head.encode("latin-1") + entry.body


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    mismatches: Counter[tuple[str, str]] = field(default_factory=Counter)
    reconnects: int = 0

    def line(self) -> str:
        non2xx = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return (
            f"statuses {dict(sorted(self.statuses.items()))}, non-2xx {non2xx}, "
            f"verdicts {dict(self.verdicts.most_common())}, "
            f"unexpected {sum(self.mismatches.values())} {dict(self.mismatches)}"
        )


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body, b"\r\nconnection: close" in lower


def _verdict(status: int, body: bytes) -> str:
    if status != 200:
        return f"http_{status}"
    reason = json.loads(body).get("reason")
    return reason if isinstance(reason, str) else "no_reason"


async def _one_connection(port: int, jobs: Iterator[tuple[bytes, str]], tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request, expected in jobs:  # shared by every connection: each request once
            writer.write(request)
            status, body, close = await _read_response(reader)
            verdict = _verdict(status, body)
            tally.statuses[status] += 1
            tally.verdicts[verdict] += 1
            if verdict != expected:
                tally.mismatches[(expected, verdict)] += 1
            if close:
                writer.close()
                tally.reconnects += 1
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()
        await writer.wait_closed()


def drive(port: int, credential: str, entries: list[Entry], connections: int) -> Tally:
    """A closed loop: *connections* keep-alive connections, each request sent once."""
    jobs = iter([(build_request(port, credential, e), e.expected) for e in entries])
    tally = Tally()

    async def main() -> None:
        await asyncio.gather(*(_one_connection(port, jobs, tally) for _ in range(connections)))

    asyncio.run(main())
    return tally


def _wait_for(what: str, ready: Any, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def _get(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(64)[9:12])


def _stop(proc: subprocess.Popen[bytes], timeout: float = 600) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@dataclass
class Run:
    requests: int
    seconds: float  # wall time of the requests (not of start-up)
    tally: Tally
    output: Path  # callgrind file or cProfile dump


def make_trust(tree: Tree, work: Path) -> None:
    """scripts/lib.sh make_trust: root and nhsa keys, a trust list signed for 1 day."""
    env = tree.env()
    for name in ("root", "nhsa"):
        tree.verifier(["keys", "new", "--name", name, "--dir", str(work)], env, work)
    public = (work / "nhsa.public").read_text().strip()
    keys = {"keys": [{"public": public, "issuer": "nhsa", "cards": ["mi-voucher"]}]}
    (work / "keys.json").write_text(json.dumps(keys) + "\n")
    tree.verifier(
        ["trust", "sign", str(work / "keys.json"), "--root", str(work / "root.secret"),
         "--out", str(work / "trust.paseto"), "--valid-for", "1d"],
        env, work,
    )  # fmt: skip


def one_run(
    tree: Tree, work: Path, requests: int, connections: int, out: Path, profile: bool
) -> Run:
    """Fresh Redis, enrolment, service (under callgrind or cProfile), corpus, requests."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"run{requests}-", dir=work))
    redis = RedisServer()  # started; its default maxmemory-policy is noeviction
    service: subprocess.Popen[bytes] | None = None
    try:
        env = tree.env({"VERIFIER_STORE": redis.url})
        tree.verifier(
            ["institutions", "put", "bench-hospital", "--name", "Bench", "--cards", "mi-voucher"],
            env, run_dir,
        )  # fmt: skip
        credential = tree.verifier(
            ["scanners", "add", "--institution", "bench-hospital"], env, run_dir
        ).strip()
        port = free_port()
        serve_env = tree.env(
            {**env, **SETTINGS, "VERIFIER_TRUST_LIST": str(work / "trust.paseto"),
             "VERIFIER_ROOT_KEY": str(work / "root.public")}
        )  # fmt: skip
        serve = ["serve", "--listen", f"127.0.0.1:{port}", "--workers", "1"]
        if profile:
            output = out / f"cprofile.{requests}.prof"
            command = [tree.python, "-c", PROFILED, str(output), *serve]
        else:
            command = [
                "valgrind", "--tool=callgrind", "--trace-children=yes",
                f"--callgrind-out-file={run_dir}/callgrind.%p",
                tree.python, "-c", VERIFIER, *serve,
            ]  # fmt: skip
        log = run_dir / "serve.log"
        with open(log, "wb") as err:
            service = subprocess.Popen(command, env=serve_env, cwd=run_dir, stderr=err)
        _wait_for("verifier serve", lambda: b"serving on" in log.read_bytes(), service, 900)
        if _get(port, "/readyz") != 200:
            raise SystemExit(f"verifier serve not ready:\n{log.read_text()[-2000:]}")
        # The corpus is signed now, so its tokens (300 s) are fresh while the loop runs.
        corpus = run_dir / "corpus"
        tree.run(
            ["-m", "bench", "corpus", "--key", str(work / "nhsa.secret"), "--iss", "nhsa",
             "--count", str(requests), "--holders", str(HOLDERS), "--seed", str(SEED),
             "--processes", "1", "--out", str(corpus)],
            env, run_dir,
        )  # fmt: skip
        tree.verifier(["registry", "import", str(corpus / "registry.jsonl")], env, run_dir)
        entries = read_corpus(corpus, requests)
        began = time.monotonic()
        tally = drive(port, credential, entries, connections)
        seconds = time.monotonic() - began
        code = _stop(service)
        if code != 0:
            print(f"  (verifier serve exited with status {code})", file=sys.stderr)
        if not profile:
            produced = run_dir / f"callgrind.{service.pid}"
            others = [p.name for p in run_dir.glob("callgrind.*") if p != produced]
            if others:  # children the serving process started: not counted
                print(f"  (not counted: {', '.join(others)})", file=sys.stderr)
            output = out / f"callgrind.{requests}"
            shutil.copyfile(produced, output)
        return Run(requests, seconds, tally, output)
    finally:
        if service is not None:
            _stop(service, 60)
        redis.stop()


def callgrind_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"{path}: no totals")


def annotate(path: Path, inclusive: bool) -> dict[str, int]:
    """Ir of every function in a callgrind file (self, or inclusive), as ``function [object]``.

    Recursion levels (``f'2``) are merged; costs that ``callgrind_annotate`` lists without an
    object (code inlined from another file) go to the function's object where it has one."""
    done = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
         str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    costs: Counter[str] = Counter()
    objects: dict[str, str] = {}
    table = False
    for line in done.stdout.splitlines():
        if "file:function" in line:
            table = True
            continue
        match = _ANNOTATED.match(line) if table else None
        if not match:
            continue
        name, _, obj = match.group(2).partition(" [")
        name = re.sub(r"'\d+$", "", name.rsplit(":", 1)[-1])
        if obj:
            objects.setdefault(name, Path(obj.rstrip("]")).name)
        ir = int(match.group(1).replace(",", ""))
        # Inclusive: each recursion level includes the deeper ones, so the largest is the cost.
        costs[name] = max(costs[name], ir) if inclusive else costs[name] + ir
    return {f"{name} [{objects.get(name, '?')}]": ir for name, ir in costs.items()}


def per_request(small: Mapping[str, float], large: Mapping[str, float], n: int) -> dict[str, float]:
    return {
        k: (large.get(k, 0) - small.get(k, 0)) / (2 * n)
        for k in set(small) | set(large)
        if large.get(k, 0) != small.get(k, 0)
    }


def _python_name(tree: Path, key: tuple[str, int, str]) -> str:
    filename, _, function = key
    if filename == "~":  # a built-in: "<built-in method __new__ of type object at 0x…>"
        return re.sub(r" at 0x[0-9a-f]+", "", function)
    for root in (str(tree) + "/", "site-packages/", "/lib/python3."):
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    return f"{filename}:{function}"


def profile_stats(tree: Path, path: Path) -> dict[str, tuple[float, float, float]]:
    """Function → (calls, tottime, cumtime) of a cProfile dump (same names summed)."""
    stats: dict[str, tuple[float, float, float]] = {}
    raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    for key, (_, calls, tottime, cumtime, _) in raw.items():
        name = _python_name(tree, key)
        old = stats.get(name, (0.0, 0.0, 0.0))
        stats[name] = (old[0] + calls, old[1] + tottime, max(old[2], cumtime))
    return stats


def python_per_request(
    tree: Path, small: Path, large: Path, n: int
) -> dict[str, tuple[float, float, float]]:
    a, b = profile_stats(tree, small), profile_stats(tree, large)
    zero = (0.0, 0.0, 0.0)
    return {
        k: tuple((y - x) / (2 * n) for x, y in zip(a.get(k, zero), b.get(k, zero), strict=True))  # type: ignore[misc]
        for k in set(a) | set(b)
    }


def _top(costs: Mapping[str, float], count: int) -> list[tuple[str, float]]:
    return sorted(costs.items(), key=lambda kv: -abs(kv[1]))[:count]


def measure(a: argparse.Namespace) -> None:
    tree = Tree(Path(a.tree).resolve(), a.python)
    tree.check_imports()
    out = Path(a.out).resolve() if a.out else Path(tempfile.mkdtemp(prefix="service-ir-"))
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "-C", str(tree.path), "describe", "--always", "--dirty"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"{tree.path} at {commit or '(not a git checkout)'}, {tree.python}", flush=True)
    with tempfile.TemporaryDirectory(prefix="service-ir-work-") as tmp:
        work = Path(tmp)
        make_trust(tree, work)
        runs = {}
        for n in (a.n, 3 * a.n):
            run = one_run(tree, work, n, a.connections, out, profile=False)
            total = callgrind_total(run.output)
            print(
                f"{tree.path}: {n} requests in {run.seconds:.1f} s under callgrind, "
                f"Ir {total:,}; {run.tally.line()}",
                flush=True,
            )
            runs[n] = (run, total)
        (small, ir_small), (large, ir_large) = runs[a.n], runs[3 * a.n]
        per = (ir_large - ir_small) / (2 * a.n)
        print(f"{tree.path}: {per:,.0f} instructions/request ((Ir(3N) - Ir(N)) / 2N, N={a.n})")
        summary: dict[str, Any] = {
            "tree": str(tree.path),
            "commit": commit,
            "n": a.n,
            "connections": a.connections,
            "instructions_per_request": per,
            "seconds": [small.seconds, large.seconds],
            "unexpected": sum(small.tally.mismatches.values())
            + sum(large.tally.mismatches.values()),
            "self": per_request(annotate(small.output, False), annotate(large.output, False), a.n),
            "inclusive": per_request(
                annotate(small.output, True), annotate(large.output, True), a.n
            ),
        }
        for name, cost in _top(summary["self"], a.top):
            print(f"  self {cost:12,.0f}  {name}")
        if a.profile:
            profiled = {}
            for n in (a.n, 3 * a.n):
                run = one_run(tree, work, n, a.connections, out, profile=True)
                print(f"{tree.path}: cProfile, {n} requests in {run.seconds:.1f} s; "
                      f"{run.tally.line()}", flush=True)  # fmt: skip
                profiled[n] = run.output
            py = python_per_request(tree.path, profiled[a.n], profiled[3 * a.n], a.n)
            summary["python"] = py
            print("  per request: calls, tottime µs, cumtime µs (process CPU, cProfile on)")
            per_call = {k: v for k, v in py.items() if v[0] > 0.005}  # not start-up only
            for name, _ in _top({k: v[2] for k, v in per_call.items()}, a.top):
                calls, tot, cum = per_call[name]
                print(f"  {calls:7.2f} {tot * 1e6:9.2f} {cum * 1e6:9.2f}  {name}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out / 'summary.json'}")


def _object(key: str) -> str:
    return key.rsplit(" [", 1)[-1].rstrip("]")


_CORE = {"libpython3.11.so.1.0", "python3.11", "ld-linux-x86-64.so.2", "?", "???"}


def _table(title: str, old: Mapping[str, float], new: Mapping[str, float], top: int) -> None:
    print(f"{title}: A, B, B-A per request")
    diff = {k: new.get(k, 0) - old.get(k, 0) for k in set(old) | set(new)}
    for name, delta in _top(diff, top):
        print(f"  {old.get(name, 0):10,.0f} {new.get(name, 0):10,.0f} {delta:+9,.0f}  {name}")


def compare(a: argparse.Namespace) -> None:
    """Where two summaries differ per request: C functions (self Ir), Python functions."""
    old, new = (json.loads(Path(p).read_text()) for p in a.compare)
    po, pn = old["instructions_per_request"], new["instructions_per_request"]
    print(f"A {old['tree']} {old.get('commit', '')}: {po:,.0f} instructions/request")
    print(f"B {new['tree']} {new.get('commit', '')}: {pn:,.0f} instructions/request")
    print(f"B/A = {pn / po:.4f}, B-A = {pn - po:+,.0f}")
    objects = []
    for side in (old, new):
        per: Counter[str] = Counter()
        for key, ir in side["self"].items():
            per[_object(key)] += ir
        objects.append(per)
    _table("self Ir by object", objects[0], objects[1], a.top)
    _table("self Ir by function", old["self"], new["self"], a.top)
    # Inclusive, for the entry points of the libraries (llhttp, orjson, libsodium, hiredis,
    # libuv, libc …): the interpreter's frames, and the event loop's that hold most of a
    # request, say nothing a tree's self costs do not.
    lib_old, lib_new = (
        {k: v for k, v in side["inclusive"].items() if _object(k) not in _CORE and v < 0.8 * total}
        for side, total in ((old, po), (new, pn))
    )
    _table("inclusive Ir, library functions", lib_old, lib_new, a.top)
    if "python" in old and "python" in new:
        print("Python, per request (cProfile): calls A, B; tottime µs A, B; cumtime µs A, B")
        names = sorted(
            {k for side in (old, new) for k, v in side["python"].items() if v[0] > 0.005},
            key=lambda k: (
                -max(old["python"].get(k, [0, 0, 0])[2], new["python"].get(k, [0, 0, 0])[2])
            ),
        )
        for name in names[: a.top]:
            x, y = old["python"].get(name, [0, 0, 0]), new["python"].get(name, [0, 0, 0])
            print(
                f"  {x[0]:5.2f} {y[0]:5.2f} {x[1] * 1e6:6.1f} {y[1] * 1e6:6.1f} "
                f"{x[2] * 1e6:6.1f} {y[2] * 1e6:6.1f}  {name}"
            )
        for side, label in ((old, "A"), (new, "B")):
            py = side["python"]
            calls = sum(v[0] for k, v in py.items() if ".py:" in k)
            builtins = sum(v[0] for k, v in py.items() if ".py:" not in k)
            print(
                f"{label}: {calls:.1f} Python function calls (coroutine steps included) and "
                f"{builtins:.1f} built-in calls per request"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", default=str(HERE), help="source tree (default: this checkout)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the tree")
    p.add_argument("-n", type=int, default=1500, help="N: the runs send N and 3N requests")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--out", help="keep the callgrind files and summary.json here")
    p.add_argument("--profile", action="store_true", help="also cProfile the serving process")
    p.add_argument("--top", type=int, default=25, help="rows printed per table")
    p.add_argument("--compare", nargs=2, metavar="SUMMARY", help="compare two summary.json")
    a = p.parse_args()
    if a.compare:
        compare(a)
    else:
        measure(a)


if __name__ == "__main__":
    main()
