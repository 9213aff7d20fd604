"""The fuzz targets' properties over the committed corpus and every finding, without atheris.

The seeds (tests/fuzz/corpus/, written by seeds.py) and each input a fuzz run found
(tests/fuzz/findings/<target>-<name>) go through the same ``check_*`` functions the fuzzer
calls, so a finding stays fixed once it is fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import targets  # noqa: E402

CHECKS = {"core": targets.check_core, "http1": targets.check_http1}
SEEDS = sorted((HERE / "corpus").glob("*/*"))
FINDINGS = sorted((HERE / "findings").glob("*-*"))


def test_the_corpus_covers_both_targets():
    by_target = {t: [p for p in SEEDS if p.parent.name == t] for t in CHECKS}
    assert len(by_target["core"]) >= 100 and len(by_target["http1"]) >= 100
    # The core seeds reach every verdict the catalogue exercises, acceptance included.
    reasons = {targets.verdict(p.read_bytes()) for p in by_target["core"] if p.suffix == ".token"}
    seen = {r if isinstance(r, str) else "ok" for r in reasons}
    assert {"ok", "malformed", "bad_signature", "invalid_claims", "expired"} <= seen


@pytest.mark.parametrize("path", SEEDS, ids=[f"{p.parent.name}/{p.name}" for p in SEEDS])
def test_seed(path: Path):
    CHECKS[path.parent.name](path.read_bytes())


def test_every_finding():
    # One test for all of them: none is found so far (see docs/RELIABILITY.md).
    for path in FINDINGS:
        CHECKS[path.name.split("-", 1)[0]](path.read_bytes())


def test_parsed_request_keeps_its_declared_length_only():
    """A request followed by the next one's bytes: the first ends where its body does."""
    one = (
        (HERE / "corpus" / "http1" / "plain_crlf_trimmed")
        .read_bytes()
        .replace(b"Connection: close", b"Connection: keep-alive")
    )
    got = targets.http1.parse(one + one, targets.MAX_BODY)
    assert isinstance(got, targets.http1.Parsed) and got.end == len(one)
    targets.check_http1(one + one)
