"""Redis key layout, and the argument rules every store enforces so both behave alike.

Key layout (all values are compact JSON written by :mod:`verifier.codec`, except nonces)::

    vh:{<sub>}          holder record
    vn:{<sub>}:<jti>    nonce of one token; value "<claimant>\\n<request_id>[\\n<holder JSON>]"
    vi:<id>             institution record
    vs:<id>             scanner record
    vu:{<sub>}:<jti>    use of one token, kept for the reconcile window; value
                        "<claimant>\\n<request_id>\\n<used at, Unix ms>\\n<gateway id or empty>"
    vx:{<inst>}         set of the ids of an institution's scanners (its directory)
    vg:<id>             gateway record
    vgx:{<inst>}        set of the ids of an institution's gateways
    vc:conflicts        sorted set of conflicts (codec bytes), scored by when found (Unix ms)

The braces are a Redis Cluster hash tag: a holder and all of its nonces hash to the same slot,
so the claim script may touch both keys (and the token's use record) in one atomic call on
a cluster too. An institution's sets share its id as their tag. A ``sub`` must not
contain braces itself (an empty tag, or one cut short, would split the slot).
"""

from __future__ import annotations

HOLDER_PREFIX = "vh:"
NONCE_PREFIX = "vn:"
INSTITUTION_PREFIX = "vi:"
SCANNER_PREFIX = "vs:"
USE_PREFIX = "vu:"
GATEWAY_PREFIX = "vg:"
CONFLICTS_KEY = "vc:conflicts"

# Separates claimant, request id and holder snapshot inside a nonce value.
SEPARATOR = "\n"


def check_sub(sub: str) -> None:
    """Raise ValueError unless ``sub`` can name a holder (non-empty, no hash-tag braces)."""
    if not sub or "{" in sub or "}" in sub:
        raise ValueError(f"holder id must be non-empty and contain no braces: {sub!r}")


def check_claim_args(
    sub: str, jti: str, claimant: str, request_id: str | None, ttl_ms: int
) -> None:
    """Raise ValueError for arguments :meth:`Store.claim` cannot record unambiguously."""
    check_sub(sub)
    if not jti:
        raise ValueError("jti must be non-empty")
    if not claimant or SEPARATOR in claimant:
        raise ValueError(f"claimant must be non-empty and contain no newline: {claimant!r}")
    if request_id is not None and SEPARATOR in request_id:
        raise ValueError(f"request id must contain no newline: {request_id!r}")
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
        raise ValueError(f"ttl_ms must be a positive integer: {ttl_ms!r}")


def check_reconcile_args(
    sub: str, jti: str, claimant: str, request_id: str, via: str, ttl_ms: int
) -> None:
    """Raise ValueError for arguments :meth:`Store.reconcile_claim` cannot record
    unambiguously: those of :func:`check_claim_args`, a request id that is required, a gateway
    id without newlines, and a nonce time to live that may be 0 (none)."""
    check_claim_args(sub, jti, claimant, request_id, 1)
    if not request_id:
        raise ValueError("a reconciled use needs its request id")
    if SEPARATOR in via:
        raise ValueError(f"gateway id must contain no newline: {via!r}")
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms < 0:
        raise ValueError(f"ttl_ms must be a non-negative integer: {ttl_ms!r}")


def holder_key(sub: str) -> str:
    check_sub(sub)
    return f"{HOLDER_PREFIX}{{{sub}}}"


def nonce_key(sub: str, jti: str) -> str:
    check_sub(sub)
    return f"{NONCE_PREFIX}{{{sub}}}:{jti}"


def institution_key(inst_id: str) -> str:
    return f"{INSTITUTION_PREFIX}{inst_id}"


def scanner_key(scanner_id: str) -> str:
    return f"{SCANNER_PREFIX}{scanner_id}"


def use_key(sub: str, jti: str) -> str:
    check_sub(sub)
    return f"{USE_PREFIX}{{{sub}}}:{jti}"


def gateway_key(gateway_id: str) -> str:
    return f"{GATEWAY_PREFIX}{gateway_id}"


def institution_scanners_key(inst_id: str) -> str:
    return f"vx:{{{inst_id}}}"


def institution_gateways_key(inst_id: str) -> str:
    return f"vgx:{{{inst_id}}}"
