"""What a block-and-wake costs on this machine (the latency floor in docs/PERFORMANCE.md).

    python experiments/vm_wakeup.py

1. Two processes pass one byte back and forth over a socketpair, on one core and across two,
   with and without a pause between round trips: the round-trip time.
2. One Ed25519 verification, back to back and right after sleeping or spinning.
3. A spinning loop on every core at once (no system calls): how much of its time the machine
   takes away, in gaps of more than 50 µs (host stalls, interrupts, other tasks).

    python experiments/vm_wakeup.py --cyclictest HISTOGRAM

summarises a histogram written by ``cyclictest -h N`` (Debian's rt-tests), e.g.
``cyclictest -m -t2 -a0,1 -i 500 -D 60 -q -h 20000 > hist.txt``: per thread, the share of
timer wake-ups later than 100 µs, 250 µs, 1 ms and 2 ms.
"""

import os
import socket
import sys
import time

import nacl.signing


def pingpong(core_a: int, core_b: int, gap: float, rounds: int = 2000) -> str:
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {core_b})
        a.close()
        while data := b.recv(16):
            b.send(data)
        os._exit(0)
    os.sched_setaffinity(0, {core_a})
    b.close()
    times = []
    for _ in range(rounds):
        if gap:
            time.sleep(gap)
        t = time.perf_counter_ns()
        a.send(b"x")
        a.recv(16)
        times.append(time.perf_counter_ns() - t)
    a.close()
    os.waitpid(pid, 0)
    return _summary(times)


def verify_after(gap: float, spin: bool, rounds: int = 1000) -> str:
    key = nacl.signing.SigningKey.generate()
    signed, verify_key = key.sign(b"x" * 200), key.verify_key
    for _ in range(500):  # warm up
        verify_key.verify(signed)
    times = []
    for _ in range(rounds):
        if gap and spin:
            end = time.perf_counter() + gap
            while time.perf_counter() < end:
                pass
        elif gap:
            time.sleep(gap)
        t = time.perf_counter_ns()
        verify_key.verify(signed)
        times.append(time.perf_counter_ns() - t)
    return _summary(times)


def stalls(core: int, seconds: float) -> str:
    os.sched_setaffinity(0, {core})
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    gaps, last = [], clock()
    while last < end:
        now = clock()
        if now - last > 50_000:
            gaps.append(now - last)
        last = now
    lost = sum(gaps) / (seconds * 1e9) * 100
    over = {ms: sum(g > ms * 1_000_000 for g in gaps) for ms in (1, 2)}
    return (
        f"core {core}: {lost:.2f} % of {seconds:g} s lost in {len(gaps)} gaps > 50 µs; "
        f"{over[1]} > 1 ms, {over[2]} > 2 ms, max {max(gaps, default=0) / 1e6:.2f} ms"
    )


def cyclictest_summary(path: str) -> None:
    rows = [line.split() for line in open(path) if line[:1].isdigit()]
    for column in range(1, len(rows[0]) if rows else 1):
        counts = [(int(row[0]), int(row[column])) for row in rows]
        total = sum(n for _, n in counts) or 1
        shares = "  ".join(
            f"> {limit} µs {sum(n for us, n in counts if us > limit) / total * 100:.3f} %"
            for limit in (100, 250, 1000, 2000)
        )
        print(f"thread {column - 1}: {total} wake-ups  {shares}")


def _summary(ns: list[int]) -> str:
    ns.sort()
    n = len(ns)
    return (
        f"p50 {ns[n // 2] / 1000:7.1f}  p90 {ns[n * 9 // 10] / 1000:7.1f}  "
        f"p99 {ns[n * 99 // 100] / 1000:7.1f}  max {ns[-1] / 1000:8.1f} µs"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cyclictest"]:
        cyclictest_summary(sys.argv[2])
        sys.exit(0)
    other = 1 if os.cpu_count() and os.cpu_count() > 1 else 0  # type: ignore[operator]
    print("round trip of one byte between two processes")
    for gap in (0.0, 0.0003, 0.001):
        for cores in ((0, 0), (0, other)):
            print(
                f"  cores {cores[0]}->{cores[1]}, pause {gap * 1e6:5.0f} µs: {pingpong(*cores, gap)}"
            )
    print("one Ed25519 verification (core 0)")
    os.sched_setaffinity(0, {0})
    for gap, spin in ((0.0, False), (0.001, True), (0.001, False), (0.005, False)):
        how = (
            "back to back"
            if not gap
            else f"after {'spinning' if spin else 'sleeping'} {gap * 1e3:g} ms"
        )
        print(f"  {how:24s}: {verify_after(gap, spin)}")
    print("a spinning loop on every core at once, 10 s")
    spinners = sorted({0, other})  # this process is pinned to core 0 by now
    children = []
    for core in spinners[1:]:
        pid = os.fork()
        if pid == 0:
            print(f"  {stalls(core, 10)}", flush=True)
            os._exit(0)
        children.append(pid)
    print(f"  {stalls(spinners[0], 10)}", flush=True)
    for pid in children:
        os.waitpid(pid, 0)
    sys.exit(0)
