"""Signing one chunk of corpus tokens: the work a ``bench corpus`` worker process does.

Every signed token carries a fresh ``jti`` from :func:`verifier.tokens.new_jti`: 128 bits
from the operating system's CSPRNG, never derived from ``--seed``. The seed fixes the mix,
the layout and the holders, not the nonces, so two corpora made with the same seed share no
``jti`` (a collision among ``n`` tokens has probability below ``n**2 / 2**129``: about
``10**-19`` for ten billion tokens).
"""

from __future__ import annotations

import random
import secrets
import string
from dataclasses import dataclass

import orjson

from verifier import b64url, paserk, paseto, rfc3339, tokens

EXPIRED_MARGIN = 120  # seconds beyond exp + leeway, so that clock skew cannot revive one
_GARBAGE = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SignJob:
    """Entries ``first … first+len(kinds)-1``: their kinds and holder ids ("" when none)."""

    first: int
    kinds: tuple[str, ...]
    subs: tuple[str, ...]
    secret: bytes  # the trusted issuer's k4 secret key (64 bytes)
    stranger: bytes  # a throw-away key: signs this chunk's forged and unknown_key tokens
    iss: str
    card: str
    region: str
    iat: float
    ttl: int
    exp_leeway: int


@dataclass(frozen=True)
class SignedChunk:
    """Token text per entry ("" for replays, filled in later from the original)."""

    first: int
    tokens: list[str]


def sign_chunk(job: SignJob) -> SignedChunk:
    """Make the tokens of one chunk (runs in a worker process)."""
    trusted = orjson.dumps({"kid": paserk.pid(job.secret[32:])})
    stranger = orjson.dumps({"kid": paserk.pid(job.stranger[32:])})
    fresh = (rfc3339.format(job.iat), rfc3339.format(job.iat + job.ttl))
    old_iat = job.iat - job.ttl - job.exp_leeway - EXPIRED_MARGIN
    stale = (rfc3339.format(old_iat), rfc3339.format(old_iat + job.ttl))
    # kind -> (signing key, footer, (iat, exp)); the same claims as verifier.tokens.mint.
    recipes = {
        "valid": (job.secret, trusted, fresh),
        "expired": (job.secret, trusted, stale),
        "unknown_key": (job.stranger, stranger, fresh),
        "forged": (job.stranger, trusted, fresh),  # trusted kid, wrong signature
    }
    rng = random.Random(secrets.randbits(64))  # shapes of malformed entries only
    out: list[str] = []
    for kind, sub in zip(job.kinds, job.subs, strict=True):
        recipe = recipes.get(kind)
        if recipe is not None:
            key, footer, (iat, exp) = recipe
            claims = {
                "iss": job.iss,
                "sub": sub,
                "jti": tokens.new_jti(),
                "iat": iat,
                "exp": exp,
                "card": job.card,
                "region": job.region,
            }
            out.append(paseto.sign(key, orjson.dumps(claims), footer))
        elif kind == "malformed":
            out.append(malformed(rng, trusted))
        elif kind == "replay":
            out.append("")
        else:
            raise ValueError(f"unknown corpus entry kind {kind!r}")
    return SignedChunk(job.first, out)


def malformed(rng: random.Random, footer_json: bytes) -> str:
    """Text the verifier must refuse as ``malformed``, in one of four shapes.

    *footer_json* is a footer naming a trusted key, so that the refusal comes from the
    payload and not from an unknown ``kid``.
    """
    footer = b64url.encode(footer_json).decode()
    payload = "".join(rng.choices(_GARBAGE, k=rng.randrange(120, 300)))
    shape = rng.randrange(4)
    if shape == 0:  # not a PASETO token at all
        return "".join(rng.choices(_GARBAGE, k=rng.randrange(20, 200)))
    if shape == 1:  # characters outside base64url in the payload
        cut = rng.randrange(len(payload))
        return f"v4.public.{payload[:cut]}!{payload[cut:]}.{footer}"
    if shape == 2:  # padded (standard) base64 is not strict base64url
        return f"v4.public.{payload[: len(payload) // 4 * 4 - 2]}==.{footer}"
    return f"v4.public.{payload}"  # no footer, so no kid
