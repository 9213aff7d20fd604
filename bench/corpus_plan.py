"""Where each kind of corpus entry goes, and which earlier token a replay re-sends. Pure.

Kinds: ``valid`` (a fresh token signed by the trusted issuer key), ``replay`` (an earlier
valid token sent again), ``expired``, ``forged`` (trusted ``kid``, another key's signature),
``unknown_key`` (another key and its own ``kid``) and ``malformed``.

Replay placement rule. With ``--processes P`` the engine gives process ``p`` the contiguous
block ``[p*n//P, (p+1)*n//P)`` of an ``n``-record corpus. A replay is only answered
``replayed`` if its original was sent, and answered, before it: by the same process (the
shards run in parallel, so across shards nothing is ordered). The corpus is therefore cut
at *every* shard boundary ``p*n//P`` for all ``P`` from 1 to :data:`REPLAY_SAFE_PROCESSES`
(8): these are the points of the Farey sequence of order 8, which cut the corpus into 22
*segments*, the shortest 1/56 of it. (Same 1/8th block alone is not enough: ``n//3`` cuts
the block ``[n//4, 3n//8)``.) Each replay lies in the same segment as its original, hence in
the same shard for every ``P`` from 1 to 8, and :func:`replay_gap` records after it: 1000,
or half the segment when the segment is shorter than 2000 records (corpora under about
112 000 records), so that the first use has long been answered when the replay is sent.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

KINDS = ("valid", "replay", "expired", "forged", "unknown_key", "malformed")
DEFAULT_MIX = "valid=0.9,replay=0.04,expired=0.02,forged=0.02,unknown_key=0.01,malformed=0.01"
REPLAY_SAFE_PROCESSES = 8
REPLAY_GAP = 1000
_SUM_TOLERANCE = 1e-3


class CorpusPlanError(ValueError):
    """The requested corpus cannot be laid out (bad mix, too many replays, …)."""


@dataclass(frozen=True)
class Plan:
    """The layout of a corpus: ``kinds[i]`` of entry ``i``; ``holder[i]`` the index of the
    holder it is for (``-1`` for replays and malformed entries); ``original[j]`` the entry
    whose token replay ``j`` re-sends."""

    kinds: list[str]
    holder: list[int]
    original: dict[int, int]


def parse_mix(text: str) -> dict[str, float]:
    """``"valid=0.9,replay=0.1"`` → shares per kind (absent kinds are 0), normalised to 1."""
    mix = dict.fromkeys(KINDS, 0.0)
    seen: set[str] = set()
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name not in mix:
            raise CorpusPlanError(f"--mix: {item.strip()!r} is not KIND=SHARE with KIND in {KINDS}")
        if name in seen:
            raise CorpusPlanError(f"--mix: {name} given twice")
        seen.add(name)
        try:
            share = float(value)
        except ValueError as err:
            raise CorpusPlanError(f"--mix: {name}: {value!r} is not a number") from err
        if not 0 <= share <= 1:
            raise CorpusPlanError(f"--mix: {name} must be between 0 and 1")
        mix[name] = share
    total = sum(mix.values())
    if abs(total - 1) > _SUM_TOLERANCE:
        raise CorpusPlanError(f"--mix: shares add up to {total:g}, not 1")
    return {name: share / total for name, share in mix.items()}


def split_counts(count: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Whole counts adding up to *count*, each within 1 of ``count * share`` (largest remainder)."""
    total = sum(shares.values())
    exact = {name: count * share / total for name, share in shares.items()}
    counts = {name: int(value) for name, value in exact.items()}
    order = sorted(shares, key=lambda name: counts[name] - exact[name])
    for name in order[: count - sum(counts.values())]:
        counts[name] += 1
    return counts


def segment_bounds(count: int, max_processes: int = REPLAY_SAFE_PROCESSES) -> list[tuple[int, int]]:
    """Half-open ranges between all shard boundaries for 1..*max_processes* processes."""
    cuts = sorted({p * count // n for n in range(1, max_processes + 1) for p in range(n + 1)})
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]


def replay_gap(length: int) -> int:
    """Least distance from an original to its replay in a segment of *length* records."""
    return max(1, min(REPLAY_GAP, length // 2))


def plan_corpus(
    count: int,
    shares: Mapping[str, float],
    holders: int,
    rng: random.Random,
    max_processes: int = REPLAY_SAFE_PROCESSES,
) -> Plan:
    """Lay out *count* entries with the given shares; see the module docstring for replays."""
    if count < 1 or holders < 1:
        raise CorpusPlanError("count and holders must be at least 1")
    counts = split_counts(count, shares)
    segments = segment_bounds(count, max_processes)
    per_segment = split_counts(
        counts["replay"], {str(i): b - a for i, (a, b) in enumerate(segments)}
    )
    kinds = [""] * count
    for i, (start, stop) in enumerate(segments):
        wanted, gap = per_segment[str(i)], replay_gap(stop - start)
        if wanted > stop - start - gap:
            raise CorpusPlanError(
                f"too many replays for a {count}-entry corpus: lower the replay share"
            )
        for j in rng.sample(range(start + gap, stop), wanted):
            kinds[j] = "replay"
    others = [name for name in KINDS if name != "replay" for _ in range(counts[name])]
    rng.shuffle(others)
    fill = iter(others)
    for i in range(count):
        if not kinds[i]:
            kinds[i] = next(fill)
    original: dict[int, int] = {}
    for start, stop in segments:
        _match_replays(kinds, start, stop, rng, original)
    holder = [-1 if k in ("replay", "malformed") else rng.randrange(holders) for k in kinds]
    return Plan(kinds, holder, original)


def _match_replays(
    kinds: list[str], start: int, stop: int, rng: random.Random, original: dict[int, int]
) -> None:
    """Give each replay in ``[start, stop)`` its own valid original at least the gap before.

    When none is left, a valid entry from later in the segment swaps places with an earlier
    entry of another kind: counts stay exact and later replays only gain candidates.
    """
    gap = replay_gap(stop - start)
    pool: list[int] = []
    scanned = start  # entries before this index are in the pool (if valid and unused)
    for j in range(start + gap, stop):
        if kinds[j] != "replay":
            continue
        for i in range(scanned, j - gap + 1):
            if kinds[i] == "valid":
                pool.append(i)
        scanned = max(scanned, j - gap + 1)
        if not pool:
            pool.append(_pull_valid_forward(kinds, start, j - gap + 1, stop))
        k = rng.randrange(len(pool))
        pool[k], pool[-1] = pool[-1], pool[k]
        original[j] = pool.pop()


def _pull_valid_forward(kinds: list[str], start: int, limit: int, stop: int) -> int:
    """Swap a later valid entry into ``[start, limit)``; return its new index."""
    early = next((i for i in range(start, limit) if kinds[i] not in ("valid", "replay")), None)
    late = next((i for i in range(limit, stop) if kinds[i] == "valid"), None)
    if early is None or late is None:
        raise CorpusPlanError(
            "not enough valid entries ahead of the replays: raise the valid share or the count"
        )
    kinds[early], kinds[late] = kinds[late], kinds[early]
    return early
