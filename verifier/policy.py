"""Claim policy: limits and leeways fixed when the verifier is built, never read from a token."""

from __future__ import annotations

import math
from dataclasses import dataclass

from verifier.errors import ConfigError
from verifier.trust import TRUST_LIST_ASSERTION

MAX_EXP_LEEWAY = 300  # seconds; more would let a stolen code live for minutes
MAX_FUTURE_LEEWAY = 60
MAX_LIFETIME_CAP = 3600
MAX_CLOCK_SKEW = 600


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """What the token core accepts. Defaults follow the product specification."""

    max_lifetime: int = 300  # seconds allowed between iat and exp
    exp_leeway: int = 30  # seconds a token is still accepted after exp (scanner clock skew)
    future_leeway: int = 5  # seconds iat / nbf may lie in the future
    implicit_assertion: bytes = b""  # PASETO implicit assertion bound into every signature
    max_token_bytes: int = 4096
    max_footer_bytes: int = 512
    max_json_depth: int = 8
    max_json_keys: int = 64
    # Seconds the clocks of two verifiers sharing one store may differ: a nonce is kept this
    # much longer, so a verifier whose clock is behind cannot accept a token again after the
    # nonce a verifier ahead of it wrote has expired.
    clock_skew: int = 60

    def __post_init__(self) -> None:
        checks = (
            ("max_lifetime", self.max_lifetime, 1, MAX_LIFETIME_CAP),
            ("exp_leeway", self.exp_leeway, 0, MAX_EXP_LEEWAY),
            ("future_leeway", self.future_leeway, 0, MAX_FUTURE_LEEWAY),
            ("max_token_bytes", self.max_token_bytes, 64, 16384),
            ("max_footer_bytes", self.max_footer_bytes, 16, 4096),
            ("max_json_depth", self.max_json_depth, 1, 32),
            ("max_json_keys", self.max_json_keys, 1, 1024),
            ("clock_skew", self.clock_skew, 0, MAX_CLOCK_SKEW),
        )
        for name, value, low, high in checks:
            if type(value) is not int or not low <= value <= high:
                raise ConfigError(f"policy.{name} must be an integer in [{low}, {high}]")
        if not isinstance(self.implicit_assertion, bytes):
            raise ConfigError("policy.implicit_assertion must be bytes")
        if self.implicit_assertion == TRUST_LIST_ASSERTION:
            raise ConfigError("policy.implicit_assertion must differ from the trust list's")

    @property
    def max_footer_b64(self) -> int:
        """Longest encoded footer that can decode to at most max_footer_bytes."""
        return (self.max_footer_bytes * 4 + 2) // 3

    def nonce_ttl_ms(self, exp: float, now: float) -> int:
        """How long the nonce of a token expiring at ``exp`` is kept, claimed at ``now``: until
        no verifier whose clock is within ``clock_skew`` of ours can still accept the token
        (at least one second)."""
        return max(1000, math.ceil((exp + self.exp_leeway + self.clock_skew - now) * 1000) + 1000)
