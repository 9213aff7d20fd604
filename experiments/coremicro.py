"""Microbenchmark: ``verifier.core.verify`` against bare libsodium Ed25519 verification.

Both loops run on the same machine, in the same process, over the same N distinct tokens
(distinct holders and nonces, issue times spread over a minute as a scanner fleet would see
them; built by ``bench bound``'s :func:`bench.bound.token_set`, which ``bench bound`` times the
same way in slices). The bare loop calls libsodium's ``crypto_sign_open`` directly on exactly
the bytes the token core hands it (signature || PAE), so the ratio is the share of time spent
on the signature check. Rounds alternate between the two loops; the best round of each is
reported.

    python experiments/coremicro.py [--tokens 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import orjson
from nacl._sodium import ffi, lib  # libsodium itself, as verifier.paseto calls it

from bench.bound import check, token_set
from verifier.core import verify
from verifier.policy import ClaimPolicy

_SCRATCH_BYTES = 16384  # crypto_sign_open's output buffer, allocated once (as the library does)


def _rate(fn: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def measure(n: int = 2000, rounds: int = 7) -> dict[str, object]:
    made = token_set(n, time.time())
    check(made)  # every token is genuine and accepted by the core
    toks, tl, now, pk, policy = made.tokens, made.trust_list, made.now, made.public, ClaimPolicy()
    bare = made.signed
    if max(map(len, bare)) > _SCRATCH_BYTES:
        raise ValueError("a token too long for the scratch buffer")
    scratch = ffi.new("unsigned char[]", _SCRATCH_BYTES)
    scratch_len = ffi.new("unsigned long long *")

    def run_bare() -> None:
        for signed in bare:
            if lib.crypto_sign_open(scratch, scratch_len, signed, len(signed), pk) != 0:
                raise AssertionError("bare verify failed")

    def run_core() -> None:
        for t in toks:
            verify(t, tl, policy, now)

    run_bare()  # warm up caches and the rfc3339 memo
    run_core()
    bare_rates, core_rates = [], []
    for _ in range(rounds):
        bare_rates.append(_rate(run_bare, n))
        core_rates.append(_rate(run_core, n))
    v, c = max(bare_rates), max(core_rates)
    return {
        "tokens": n,
        "rounds": rounds,
        "bare_libsodium_per_s": round(v),
        "core_verify_per_s": round(c),
        "ratio": round(c / v, 4),
        "bare_us": round(1e6 / v, 2),
        "core_us": round(1e6 / c, 2),
        "overhead_us": round(1e6 / c - 1e6 / v, 2),
        "python": platform.python_version(),
        "cpu": _cpu(),
    }


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python experiments/coremicro.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--tokens", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args(argv)
    print(orjson.dumps(measure(a.tokens, a.rounds), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
