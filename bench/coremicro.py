"""Microbenchmark: ``verifier.core.verify`` against bare libsodium Ed25519 verification.

Both loops run on the same machine, in the same process, over the same N distinct tokens
(distinct holders and nonces, issue times spread over a minute as a scanner fleet would see
them). The bare loop calls libsodium's ``crypto_sign_open`` on exactly the bytes the token
core hands it (signature || PAE), so the ratio is the share of time spent on the signature
check. Rounds alternate between the two loops; the best round of each is reported.

    python -m bench.coremicro [--tokens 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import orjson

from verifier import b64url, core, paserk, paseto, tokens, trust
from verifier.policy import ClaimPolicy


def _setup(n: int) -> tuple[list[str], list[tuple[bytes, bytes]], trust.TrustList, float]:
    root, issuer = paserk.generate(), paserk.generate()
    now = time.time()
    keys = {
        issuer.kid: trust.IssuerKey(issuer.kid, issuer.public, "nhsa", frozenset({"mi-voucher"}))
    }
    tl = trust.load(trust.sign(keys, root.secret, 1, now - 60, now + 3600), root.public, now)
    toks = [
        tokens.mint(
            issuer.secret,
            iss="nhsa",
            sub=f"holder-{i:06d}",
            card="mi-voucher",
            region="110101",
            iat=now - (i % 60),
        )
        for i in range(n)
    ]
    bare = []
    for t in toks:
        body, footer = paseto.split(t.encode())
        raw = b64url.decode(body)
        bare.append((raw[-64:] + paseto._pae3(raw[:-64], footer, b""), issuer.public))
    return toks, bare, tl, now


def _rate(fn: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def measure(n: int = 2000, rounds: int = 7) -> dict[str, object]:
    toks, bare, tl, now = _setup(n)
    policy = ClaimPolicy()
    lib, scratch, scratch_len = paseto._lib, paseto._scratch, paseto._scratch_len
    verify = core.verify

    def run_bare() -> None:
        for signed, pk in bare:
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
        prog="python -m bench.coremicro", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--tokens", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args(argv)
    print(orjson.dumps(measure(a.tokens, a.rounds), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
