"""The command line: value parsers, the command registry, and short end-to-end commands."""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from bench import cli, results, runner
from bench.args import Slo, parse_duration, parse_percent, parse_slo
from bench.corpus_format import CorpusEntry, write_corpus
from bench.histogram import Histogram
from bench.noop_server import start_in_process
from bench.plot import spectrum
from bench.runner import RunOutcome


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1.5", 1.5), ("250us", 250e-6),
     ("1h", 3600.0), (" 5 s ", 5.0)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-1s", "1 parsec", "1e3s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("0.1", 0.1), ("0%", 0.0)])
def test_parse_percent(text: str, value: float) -> None:
    assert parse_percent(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "slo"),
    [("p99=1ms", Slo(99.0, 1000.0)), ("p99.9=500us", Slo(99.9, 500.0)),
     ("max=10ms", Slo(100.0, 10_000.0)), ("P50 = 2ms", Slo(50.0, 2000.0))],
)  # fmt: skip
def test_parse_slo(text: str, slo: Slo) -> None:
    assert parse_slo(text) == slo


@pytest.mark.parametrize("text", ["p99", "q99=1ms", "p0=1ms", "p101=1ms", "p99=fast"])
def test_parse_slo_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_slo(text)


def test_every_command_is_registered() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {name for name, _ in cli.COMMANDS}
    assert {"run", "report", "plot", "compare", "find-max", "calibrate"} <= set(sub.choices)


def test_a_new_command_is_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bench_fake_quick")

    def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        sub.add_parser("fake-extension").set_defaults(handler=lambda ns: 42)

    module.add_parser = add_parser  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench_fake_quick", module)
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, ("fake-extension", "bench_fake_quick")])
    assert cli.main(["fake-extension"]) == 42


def test_version_names_the_package_and_the_commit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"bench {metadata.version('insurance-qr-verifier')}")
    revision = results.code_provenance()["git_revision"]
    if revision:  # a git checkout (not an installed wheel): the short hash is shown
        assert f"git {revision[:10]}" in line


@pytest.mark.parametrize(
    ("kwargs", "status", "word"),
    [
        ({}, 0, "VALID"),  # a clean run
        ({"send_lag_us": 500}, 1, "INVALID"),  # the generator fell behind: not a measurement
        ({"mismatches": 2}, 1, "FAILED"),  # answers the oracle did not expect
    ],
)
def test_run_exits_by_the_verdict_and_says_it_last(
    make_outcome: Callable[..., RunOutcome],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kwargs: dict[str, int],
    status: int,
    word: str,
) -> None:
    made = make_outcome(**kwargs)
    monkeypatch.setattr(runner, "run", lambda settings, source, progress: made)
    out = tmp_path / "run.json"
    assert cli.main(["run", "--target", "http://127.0.0.1:1/v1/verify", "--credential", "c",
                     "--corpus", str(tmp_path), "--rate", "200", "--slo", "p99=1ms",
                     "--out", str(out)]) == status  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"{word}: ")
    assert [line for line in lines if re.match(r"(OK|VALID|INVALID|FAILED)\b", line)] == [lines[-1]]
    assert [slo["objective"] for slo in json.loads(out.read_text())["slos"]] == ["p99<=1000µs"]


def test_run_requires_rate_or_max() -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--target", "http://127.0.0.1:1/", "--credential", "c",
                  "--corpus", "x"])  # fmt: skip


def test_non_loopback_target_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--target", "http://example.com/v1/verify", "--credential", "c",
                  "--corpus", str(tmp_path), "--rate", "10", "--out", str(tmp_path / "r.json")])  # fmt: skip


def test_spectrum_covers_the_resolvable_nines() -> None:
    histogram = Histogram()
    histogram.record_many(range(1, 10_001))
    points = spectrum(histogram)
    assert points[0] == (0.0, 0.001)
    assert points[-1][0] == pytest.approx(99.99)
    assert [v for _, v in points] == sorted(v for _, v in points)
    assert spectrum(Histogram()) == []


def test_run_report_plot_compare_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_corpus(tmp_path / "corpus", [CorpusEntry(b"t%d" % i, "text/plain", "ok")
                                       for i in range(400)])  # fmt: skip
    server = start_in_process()
    try:
        out = tmp_path / "run.json"
        status = cli.main(["run", "--target", server.url, "--credential", "scanner",
                           "--corpus", str(tmp_path / "corpus"), "--rate", "300",
                           "--duration", "1s", "--connections", "4", "--out", str(out)])  # fmt: skip
    finally:
        server.stop()
    assert status in (0, 1)  # valid unless this machine was too busy to keep the schedule
    document = json.loads(out.read_text())
    assert document["requests"]["completed"] == 300
    assert document["intended_rps"] == 300.0
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "achieved_rps" in table
    assert any(line.split()[:3] == ["ok", "ok", "300"] for line in table.splitlines())
    assert table.splitlines()[-1].startswith("VALID: " if status == 0 else "INVALID: ")
    png = tmp_path / "run.png"
    assert cli.main(["plot", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["compare", str(out), str(out)]) == status


def test_calibrate_noise_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "calibrate.json"
    status = cli.main(["calibrate", "--rate", "200", "--duration", "1s", "--connections", "2",
                       "--out", str(out)])  # fmt: skip
    assert status in (0, 1)
    document = json.loads(out.read_text())
    assert document["kind"] == "calibrate-noise"
    assert document["requests"]["completed"] == 200
    assert document["requests"]["errors"] == document["requests"]["mismatches"] == 0
    out = capsys.readouterr().out
    assert "noise floor at 200 rps" in out
    assert out.rstrip().splitlines()[-1].startswith(("VALID", "INVALID"))  # the verdict is last
