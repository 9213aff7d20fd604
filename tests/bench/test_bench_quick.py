"""`bench quick`: the newcomer's one command, run as a real subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import quick as quick_module
from bench.cli import build_parser
from bench.localservice import LocalServiceConfig, LocalServiceError, local_service
from bench.quick import PLOT, RESULTS, QuickOptions, corpus_size, quick
from bench.runner import RunOutcome

MakeOutcome = Callable[..., RunOutcome]  # the make_outcome fixture (conftest.py)

BENCH = str(Path(sys.executable).with_name("bench"))


def _quick(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BENCH, "quick", "--duration", "2s", "--rate", "50", "--out", str(out), *extra],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _check_outputs(out: Path, done: subprocess.CompletedProcess[str]) -> None:
    doc = json.loads((out / RESULTS).read_text())
    assert doc["requests"]["mismatches"] == 0
    assert doc["requests"]["errors"] == 0
    assert doc["requests"]["completed"] > 0
    assert "ok" in {v["expected"] for v in doc["verdicts"]}  # a short run: not every kind
    assert all(v["expected"] == v["actual"] for v in doc["verdicts"])
    assert (out / PLOT).read_bytes().startswith(b"\x89PNG")
    assert "0 oracle mismatches" in done.stdout
    last = done.stdout.splitlines()[-1]  # the verdict comes last, and sets the exit status
    if doc["valid"]:
        assert done.returncode == 0 and last.startswith("VALID: "), done.stdout + done.stderr
    else:  # a machine too busy to keep even this schedule: said, and exit 1
        assert done.returncode == 1 and last.startswith("INVALID: "), done.stdout + done.stderr
        assert all("fell behind" in why or "below the intended" in why
                   for why in doc["invalid_reasons"])  # fmt: skip


def test_quick_with_the_embedded_store_needs_no_redis(tmp_path):
    out = tmp_path / "out"
    _check_outputs(out, _quick(out))


def test_quick_with_redis(tmp_path, redis_url):
    out = tmp_path / "out"
    _check_outputs(out, _quick(out, "--store", redis_url))


@pytest.mark.parametrize(
    ("kwargs", "status", "word"),
    [
        ({}, 0, "VALID"),  # a clean run
        ({"send_lag_us": 500}, 1, "INVALID"),  # the generator fell behind: not a measurement
        ({"mismatches": 2}, 1, "FAILED"),  # answers the oracle did not expect
    ],
)
def test_quick_exits_by_the_verdict_and_says_it_last(
    make_outcome: MakeOutcome,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kwargs: dict[str, int],
    status: int,
    word: str,
) -> None:
    monkeypatch.setattr(quick_module, "_run_in", lambda directory, opts: make_outcome(**kwargs))
    assert quick(QuickOptions(out=tmp_path)) == status
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"{word}: ")
    verdicts = [line for line in lines if re.match(r"(OK|VALID|INVALID|FAILED)\b", line)]
    assert verdicts == [lines[-1]]  # never an OK line after (or before) an INVALID one
    assert json.loads((tmp_path / RESULTS).read_text())["valid"] is (word != "INVALID")
    assert (tmp_path / PLOT).read_bytes().startswith(b"\x89PNG")


def test_quick_without_matplotlib_still_writes_results_and_the_verdict(
    make_outcome: MakeOutcome,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(quick_module, "_run_in", lambda directory, opts: make_outcome())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    assert quick(QuickOptions(out=tmp_path)) == 0
    captured = capsys.readouterr()
    assert "no plot: matplotlib is not installed" in captured.err
    assert captured.out.splitlines()[-1].startswith("VALID: ")
    assert (tmp_path / RESULTS).exists() and not (tmp_path / PLOT).exists()


def test_corpus_covers_warmup_and_duration_with_room_to_spare():
    opts = QuickOptions(duration_s=10, rate=500)
    assert corpus_size(opts) >= 500 * 11 * 1.1


def test_too_long_a_run_is_refused_before_any_work(tmp_path, capsys):
    assert quick(QuickOptions(out=tmp_path, duration_s=600)) == 2
    assert "--duration" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_service_that_cannot_start_is_reported(tmp_path):
    missing = tmp_path / "missing"
    config = LocalServiceConfig(
        "memory://", missing, missing, missing, "inst", "Inst", ("mi-voucher",)
    )
    with pytest.raises(LocalServiceError), local_service(config):
        pass


def test_bench_lists_corpus_race_and_quick():
    parser = build_parser()
    for command in ("corpus", "race", "quick"):
        ns = parser.parse_args(_minimal(command))
        assert callable(ns.handler)


def _minimal(command: str) -> list[str]:
    return {
        "corpus": ["corpus", "--key", "k", "--iss", "nhsa", "--count", "1", "--out", "o"],
        "race": ["race", "--target", "http://127.0.0.1:1/", "--credential", "c", "--token", "t"],
        "quick": ["quick"],
    }[command]
