"""`bench corpus`: layout, oracle, nonces, replays and the registry it writes."""

from __future__ import annotations

import argparse
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import corpus_cmd
from bench.corpus import CorpusOptions, generate_corpus
from bench.corpus_format import CorpusEntry, Manifest, read_corpus, shard_bounds
from bench.corpus_plan import (
    KINDS,
    CorpusPlanError,
    parse_mix,
    plan_corpus,
    replay_gap,
    segment_bounds,
    split_counts,
)
from verifier import b64url, core, coverage, paserk, registry, trust
from verifier.errors import TokenError
from verifier.policy import ClaimPolicy

MIX = parse_mix("valid=0.9,replay=0.04,expired=0.02,forged=0.02,unknown_key=0.01,malformed=0.01")
SEED = 20240611


@dataclass
class Made:
    dir: Path
    manifest: Manifest
    entries: list[CorpusEntry]
    issuer: paserk.KeyPair
    card: str


def _make(root: Path, name: str, issuer: paserk.KeyPair, **kw: object) -> Made:
    key = root / f"{name}.secret"
    key.write_text(paserk.secret_to_paserk(issuer.secret))
    opts = CorpusOptions(key=key, iss="nhsa", count=500, out=root / name, holders=200, **kw)  # type: ignore[arg-type]
    summary = generate_corpus(opts)
    manifest, entries = read_corpus(summary.directory)
    return Made(summary.directory, manifest, entries, issuer, opts.card)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Made, Made, Made]:
    """Two text/plain mi-voucher corpora made with the same seed on 4 processes, and one
    JSON-bodied ss-ecard corpus on 1 process."""
    root = tmp_path_factory.mktemp("corpora")
    issuer = paserk.generate()
    a = _make(root, "a", issuer, seed=SEED, processes=4)
    b = _make(root, "b", issuer, seed=SEED, processes=4)
    c = _make(root, "c", paserk.generate(), seed=7, processes=1, card="ss-ecard", json_body=True)
    return a, b, c


def _token(entry: CorpusEntry) -> bytes:
    if entry.content_type == "application/json":
        return orjson.loads(entry.body)["token"].encode()
    assert entry.content_type == "text/plain"
    return entry.body


def _claims(token: bytes) -> dict[str, object] | None:
    """The claims of a signed token without verifying it (None for malformed text)."""
    try:
        raw = b64url.decode(token.split(b".")[2])
        return orjson.loads(raw[:-64])
    except (IndexError, ValueError):
        return None


def test_counts_per_kind_match_the_mix(corpora):
    for made in corpora:
        counts = made.manifest.generator["counts"]
        assert sum(counts.values()) == made.manifest.count == len(made.entries) == 500
        for kind in KINDS:
            assert abs(counts.get(kind, 0) - 500 * MIX[kind]) < 1, kind
        assert sum(made.manifest.verdicts.values()) == 500


def test_manifest_hash_matches_the_records(corpora):
    for made in corpora:
        digest = hashlib.sha256((made.dir / "requests.bin").read_bytes()).hexdigest()
        assert digest == made.manifest.content_sha256


def test_every_expected_verdict_is_what_the_verifier_says(corpora):
    for made in corpora:
        g = made.manifest.generator
        keys = {
            made.issuer.kid: trust.IssuerKey(
                made.issuer.kid, made.issuer.public, "nhsa", frozenset({made.card})
            )
        }
        now = g["valid_from_unix"] + 1
        tl = trust.TrustList(1, now - 10, now + 3600, keys)
        lines = (made.dir / "registry.jsonl").read_text().splitlines()
        holders = {h.sub: h for h in registry.parse_jsonl(lines)}
        used: set[tuple[str, str]] = set()
        for n, entry in enumerate(made.entries):
            try:
                tok = core.verify(_token(entry), tl, ClaimPolicy(), now)
            except TokenError as err:
                actual = err.reason
            else:
                nonce = (tok.sub, tok.jti)
                actual = (
                    "replayed" if nonce in used else coverage.decide(tok.card, holders.get(tok.sub))
                )
                used.add(nonce)
            assert actual == entry.expected, f"entry {n}"


def test_coverage_states_are_all_represented(corpora):
    a, _, c = corpora
    assert set(a.manifest.generator["holders"]["valid_verdicts"]) == {
        "ok",
        "not_enrolled",
        "coverage_suspended",
        "coverage_terminated",
    }
    assert "physical_card_inactive" in c.manifest.generator["holders"]["valid_verdicts"]
    assert set(c.manifest.verdicts) >= {"ok", "replayed", "expired", "bad_signature"}


def test_jti_unique_within_and_across_corpora_of_the_same_seed(corpora):
    a, b, _ = corpora
    assert [e.expected for e in a.entries] == [e.expected for e in b.entries]  # same layout
    assert a.manifest.content_sha256 != b.manifest.content_sha256
    seen: set[object] = set()
    for made in (a, b):
        for entry in made.entries:
            claims = _claims(_token(entry))
            if claims is None or entry.expected == "replayed":
                continue
            assert claims["jti"] not in seen
            seen.add(claims["jti"])
    assert len(seen) > 900


def test_replays_follow_their_original_in_the_same_shard_for_any_p(corpora):
    for made in corpora:
        count, first_use = len(made.entries), dict[bytes, int]()
        min_gap = made.manifest.generator["replays"]["min_gap"]
        replays = 0
        for j, entry in enumerate(made.entries):
            token = _token(entry)
            if entry.expected != "replayed":
                first_use.setdefault(token, j)
                continue
            replays += 1
            i = first_use[token]  # KeyError: replay before its original
            assert j - i >= min_gap
            for p in range(1, 9):
                shard = next(s for s in range(p) if i < shard_bounds(count, s, p)[1])
                lo, hi = shard_bounds(count, shard, p)
                assert lo <= i < j < hi, (p, i, j)
        assert replays == made.manifest.generator["counts"]["replay"]


def test_registry_jsonl_imports_and_leaves_unknown_holders_out(corpora):
    for made in corpora:
        h = made.manifest.generator["holders"]
        lines = (made.dir / h["registry"]).read_text().splitlines()
        assert len(registry.parse_jsonl(lines)) == h["registered"] == 200 - h["not_enrolled"]
        assert h["not_enrolled"] > 0


# --- the plan alone (no signing) ---------------------------------------------------------


def _check_plan(count: int, shares: dict[str, float], seed: int) -> None:
    plan = plan_corpus(count, shares, 50, random.Random(seed))
    assert {k: plan.kinds.count(k) for k in KINDS} == split_counts(count, shares)
    assert sorted(plan.original) == [j for j, k in enumerate(plan.kinds) if k == "replay"]
    assert len(set(plan.original.values())) == len(plan.original)  # one replay per original
    segments = segment_bounds(count)
    for j, i in plan.original.items():
        assert plan.kinds[i] == "valid"
        a, b = next(s for s in segments if s[0] <= j < s[1])
        assert a <= i and j - i >= replay_gap(b - a)
        for p in range(1, 9):
            assert any(
                lo <= i < j < hi for lo, hi in map(lambda s: shard_bounds(count, s, p), range(p))
            )


def test_big_plan_keeps_replays_1000_behind_in_22_segments():
    count = 120_000
    assert len(segment_bounds(count)) == 22
    assert min(b - a for a, b in segment_bounds(count)) >= 2000
    _check_plan(count, MIX, 1)
    plan = plan_corpus(count, MIX, 50, random.Random(1))
    assert min(j - i for j, i in plan.original.items()) >= 1000


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 3000),
    seed=st.integers(0, 2**32),
    replay=st.sampled_from([0.0, 0.04, 0.2]),
)
def test_any_plan_keeps_counts_exact_and_replays_safe(count, seed, replay):
    shares = {**dict.fromkeys(KINDS, 0.0), "valid": 0.9 - replay, "replay": replay, "expired": 0.1}
    try:
        _check_plan(count, shares, seed)
    except CorpusPlanError:
        # Only small corpora may be impossible to lay out: 22 segments of a few records
        # cannot hold a replay and its original far enough apart.
        assert count < (100 if replay <= 0.04 else 400)


@pytest.mark.parametrize(
    "text",
    [
        "valid=0.9",  # does not add up to 1
        "valid=1,bogus=0",  # unknown kind
        "valid=1,valid=0",  # twice
        "valid=x",  # not a number
        "valid",  # not KIND=SHARE
    ],
)
def test_bad_mix_is_refused(text):
    with pytest.raises(CorpusPlanError):
        parse_mix(text)


def test_command_line_prints_the_follow_up_commands(tmp_path, capsys):
    issuer = paserk.generate()
    (tmp_path / "nhsa.secret").write_text(paserk.secret_to_paserk(issuer.secret))
    parser = argparse.ArgumentParser()
    corpus_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["corpus", "--key", str(tmp_path / "nhsa.secret"), "--iss", "nhsa", "--count", "300"]
        + ["--holders", "50", "--out", str(tmp_path / "c"), "--processes", "1", "--seed", "3"]
    )
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert f"verifier registry import {tmp_path / 'c' / 'registry.jsonl'}" in out
    assert "verifier institutions put bench-hospital" in out
    assert "verifier scanners add --institution bench-hospital" in out
    assert "bench run --target" in out and paserk.public_to_paserk(issuer.public) in out
    bad = parser.parse_args(
        [
            "corpus",
            "--key",
            "missing",
            "--iss",
            "nhsa",
            "--count",
            "1",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert bad.handler(bad) == 2
