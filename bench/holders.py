"""The insured population behind a corpus: who is covered, and what the service will say. Pure.

Every holder gets a coverage *state*; all but ``unknown`` holders are written to
``registry.jsonl`` (the input of ``verifier registry import``), so an unknown holder's valid
token is answered ``not_enrolled``. The expected verdict of a holder's valid token is what
:func:`verifier.coverage.decide` says for the record as it will be imported, so the oracle
and the service apply the same rule by construction.

Holder ids are ``bh<tag>-<n>`` with a tag derived from the seed: corpora made with the same
seed share the same population, corpora with other seeds do not collide in one registry.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from bench.corpus_plan import split_counts
from verifier import coverage, registry
from verifier.records import Holder

# Coverage states and their shares of the population, per card type.
STATE_SHARES = {
    "mi-voucher": {"active": 0.90, "suspended": 0.04, "terminated": 0.03, "unknown": 0.03},
    "ss-ecard": {
        "active": 0.86,
        "card_inactive": 0.04,  # covered, but the physical social security card is not active
        "suspended": 0.04,
        "terminated": 0.03,
        "unknown": 0.03,
    },
}
_SCHEMES = (("employee", 55), ("retiree", 25), ("resident", 15), ("flexible", 5))
_CARDS_OF_ACTIVE = (("active", 85), ("none", 10), ("lost", 5))  # mi-voucher needs no card
_INACTIVE_CARDS = ("lost", "cancelled", "none")


@dataclass(frozen=True)
class Population:
    """Holder ``i`` is ``subs[i]``; ``records[i]`` is its registry line (None: not enrolled);
    ``expected[i]`` is the verdict its valid tokens must get."""

    subs: list[str]
    records: list[dict[str, Any] | None]
    expected: list[str]

    def registry_lines(self) -> list[dict[str, Any]]:
        """The ``registry.jsonl`` objects, in holder order."""
        return [r for r in self.records if r is not None]


def seed_tag(seed: int) -> str:
    """Eight hex digits that name a seed's population."""
    return hashlib.sha256(f"bench-holders:{seed}".encode()).hexdigest()[:8]


def make_population(count: int, card: str, region: str, seed: int) -> Population:
    """*count* holders with coverage states in :data:`STATE_SHARES` proportions."""
    rng = random.Random(f"holders:{seed}")
    states = [s for s, n in split_counts(count, STATE_SHARES[card]).items() for _ in range(n)]
    rng.shuffle(states)
    tag = seed_tag(seed)
    subs = [f"bh{tag}-{i:07d}" for i in range(count)]
    records = [_record(sub, state, region, rng) for sub, state in zip(subs, states, strict=True)]
    expected = [coverage.decide(card, _holder(r)) for r in records]
    return Population(subs, records, expected)


def _record(sub: str, state: str, region: str, rng: random.Random) -> dict[str, Any] | None:
    if state == "unknown":
        return None
    scheme = rng.choices([s for s, _ in _SCHEMES], [w for _, w in _SCHEMES])[0]
    if state == "card_inactive":
        status, physical = "active", rng.choice(_INACTIVE_CARDS)
    elif state == "active":
        status = "active"
        physical = rng.choices([c for c, _ in _CARDS_OF_ACTIVE], [w for _, w in _CARDS_OF_ACTIVE])[
            0
        ]
    else:
        status, physical = state, rng.choice(("active", "none"))
    fen = rng.randrange(0, 500_000) if status == "active" else rng.randrange(0, 2_000)
    return {
        "sub": sub,
        "status": status,
        "scheme": scheme,
        "region": region,
        "balance": f"{fen // 100}.{fen % 100:02d}",
        "physical_card": physical,
    }


def _holder(record: dict[str, Any] | None) -> Holder | None:
    return None if record is None else registry.holder_from_fields(**record)
