"""``bench bound``'s V and C: its own tokens and trust list, built and checked with public pieces."""

from __future__ import annotations

import os
import time

import pytest

from bench import bound
from verifier import paseto
from verifier.core import verify
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy


def test_the_token_set_is_genuine_and_distinct() -> None:
    made = bound.token_set(20, time.time())
    bound.check(made)  # the token core accepts every token; every signature check passes
    holders = {verify(t, made.trust_list, ClaimPolicy(), made.now).sub for t in made.tokens}
    assert len(holders) == len(set(made.signed)) == 20


def test_a_forged_signature_fails_the_check() -> None:
    made = bound.token_set(3, time.time())
    forged = bytes([made.signed[0][0] ^ 1]) + made.signed[0][1:]
    assert not paseto.open_signed(forged, made.public)
    with pytest.raises(AssertionError):
        bound.check(bound.TokenSet(made.tokens, made.trust_list, [forged], made.public, made.now))


def test_tokens_outside_their_trust_list_fail_the_check() -> None:
    made = bound.token_set(3, time.time())
    other = bound.token_set(1, time.time())
    with pytest.raises(TokenError):
        bound.check(bound.TokenSet(made.tokens, other.trust_list, [], made.public, made.now))


def test_v_and_c_are_measured_in_a_pinned_child() -> None:
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else {0}
    v, c = bound.measure_v(min(cores), seconds=0.1)
    assert v > 0 and c > 0
