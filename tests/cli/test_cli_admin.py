"""The admin commands (`registry`, `institutions`, `scanners`) against a real Redis."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import RedisServer

from verifier.cli.admin import Progress, render_bar
from verifier.cli.main import main
from verifier.records import Holder, Institution, Scanner
from verifier.service.auth import AuthError, ScannerCache
from verifier.store import RedisStore

ID_NUMBER = "11010519491231002X"  # the standard example number; valid check character
ID_MASKED = "1101**********002X"
NAME = "张三明"
PASSWORD = "hunter2-not-printed"


@pytest.fixture
def store_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """VERIFIER_STORE set to the emptied test server; gives its URL."""
    monkeypatch.setenv("VERIFIER_STORE", redis_url)
    monkeypatch.delenv("VERIFIER_ALLOW_EVICTION", raising=False)
    return redis_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `verifier ARGV...` in-process; (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("verifier: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://:{PASSWORD}@127.0.0.1:{port}/0"


def read_back(url: str, sub: str) -> Holder | None:
    async def body() -> Holder | None:
        store = RedisStore(url)
        try:
            return await store.get_holder(sub)
        finally:
            await store.close()

    return asyncio.run(body())


def authenticate(url: str, credential: str) -> tuple[Scanner, Institution | None]:
    async def body() -> tuple[Scanner, Institution | None]:
        store = RedisStore(url)
        try:
            return await ScannerCache(store, ttl=0).authenticate(f"Bearer {credential}")
        finally:
            await store.close()

    return asyncio.run(body())


def key_count(url: str) -> int:
    """Keys holding records; the store's own bookkeeping (``vf:``, whether it may have
    forgotten claims) is not a record."""
    client = RedisServer.client_for(url)
    try:
        return sum(1 for key in client.scan_iter() if not key.startswith(b"vf:"))
    finally:
        client.close()


def stored_values(url: str) -> list[bytes]:
    """Every value in the store: records, and the members of sets (an institution's scanners)."""
    client = RedisServer.client_for(url)
    try:
        values: list[bytes] = []
        for key in client.keys("*"):  # type: ignore[union-attr]
            if client.type(key) == b"set":
                values.extend(client.smembers(key))  # type: ignore[arg-type]
            else:
                values.append(client.get(key) or b"")  # type: ignore[arg-type]
        return values
    finally:
        client.close()


def jsonl(*records: dict[str, object] | str) -> str:
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records
    )


def holder_line(sub: str, **extra: str) -> dict[str, object]:
    return {"sub": sub, "status": "active", "scheme": "employee", "region": "110105", **extra}


# -- registry put / get -----------------------------------------------------------------------


def test_put_get_round_trip_prints_only_masked_identity(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        *("registry", "put", "h-alice", "--status", "active", "--scheme", "retiree"),
        *("--region", "110105", "--name", NAME, "--id-number", ID_NUMBER),
        *("--balance", "1250.5", "--physical-card", "active"),
    )
    assert code == 0, err
    put = json.loads(out)
    assert put == {
        "sub": "h-alice",
        "status": "active",
        "scheme": "retiree",
        "region": "110105",
        "balance_fen": 125050,
        "physical_card": "active",
        "name_masked": "张*明",
        "id_masked": ID_MASKED,
    }
    code, out, err = run(capsys, "registry", "get", "h-alice")
    assert code == 0, err
    assert json.loads(out) == put
    client = RedisServer.client_for(store_env)
    try:
        raw = client.get("vh:{h-alice}")
    finally:
        client.close()
    assert isinstance(raw, bytes)
    for text in (out, err, raw.decode()):
        assert ID_NUMBER not in text and NAME not in text


def test_id_number_can_come_from_stdin(
    store_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(ID_NUMBER + "\n"))
    code, out, err = run(
        capsys,
        *("registry", "put", "h-bob", "--status", "suspended", "--scheme", "resident"),
        *("--region", "310101", "--id-number", "-"),
    )
    assert code == 0, err
    assert json.loads(out)["id_masked"] == ID_MASKED
    assert ID_NUMBER not in out + err


def test_invalid_id_number_is_rejected_without_echoing_it(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ID_NUMBER[:-1] + "1"  # wrong check character
    code, out, err = run(
        capsys,
        *("registry", "put", "h-carol", "--status", "active", "--scheme", "employee"),
        *("--region", "110105", "--id-number", bad),
    )
    assert code != 0
    assert out == ""
    assert_one_error_line(err, "id_number", "check character")
    assert bad not in err and bad[:6] not in err
    assert key_count(store_env) == 0


def test_bad_region_names_the_field(store_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "registry",
        "put",
        "h-d",
        "--status",
        "active",
        "--scheme",
        "employee",
        "--region",
        "11",
    )
    assert code != 0
    assert_one_error_line(err, "region must be 6 digits")


def test_get_unknown_holder_exits_1(store_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "registry", "get", "h-nobody")
    assert code == 1 and out == ""
    assert_one_error_line(err, "no holder 'h-nobody'")


# -- registry import --------------------------------------------------------------------------


def test_import_valid_file(
    store_env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "holders.jsonl"
    path.write_text(
        "\ufeff"
        + jsonl(
            holder_line("h-1", name=NAME, id_number=ID_NUMBER, balance="10.00"),
            "",
            holder_line("h-2", physical_card="lost"),
            {"sub": "h-3", "status": "terminated", "scheme": "flexible", "region": "440300"},
        ),
        encoding="utf-8",
    )
    code, out, err = run(capsys, "registry", "import", str(path))
    assert code == 0, err
    assert out.strip() == f"imported 3 holder(s) from {path}"
    assert "3/3 100%" in err  # progress (stderr is not a terminal here)
    assert ID_NUMBER not in out + err
    h1 = read_back(store_env, "h-1")
    assert h1 is not None and h1.id_masked == ID_MASKED and h1.balance_fen == 1000
    h2 = read_back(store_env, "h-2")
    assert h2 is not None and h2.physical_card == "lost"
    h3 = read_back(store_env, "h-3")
    assert h3 is not None and h3.status == "terminated"
    assert key_count(store_env) == 3


def test_import_of_many_holders_reports_progress_in_steps(
    store_env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    n = 2500  # three chunks of the Redis store's 1000
    path = tmp_path / "many.jsonl"
    path.write_text(jsonl(*(holder_line(f"h{i}") for i in range(n))), encoding="utf-8")
    code, out, err = run(capsys, "registry", "import", str(path))
    assert code == 0, err
    assert out.strip().startswith(f"imported {n} holder(s)")
    assert [line.split()[-2] for line in err.splitlines()] == [
        "1000/2500",
        "2000/2500",
        "2500/2500",
    ]
    assert key_count(store_env) == n
    assert read_back(store_env, "h2499") is not None


def test_import_with_bad_lines_imports_nothing(
    store_env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        jsonl(
            holder_line("h-1"),
            holder_line("h-2", id_number=ID_NUMBER[:-1] + "1"),  # line 2: bad check character
            holder_line("h-3"),
            holder_line("h-4"),
            {"sub": "h-5", "status": "active", "scheme": "employee"},  # line 5: no region
            holder_line("h-6"),
        ),
        encoding="utf-8",
    )
    code, out, err = run(capsys, "registry", "import", str(path))
    assert code != 0 and out == ""
    assert err.startswith("verifier: error: ")
    assert "2 bad line(s); nothing was imported" in err
    assert "line 2: id_number" in err
    assert "line 5: record: missing key 'region'" in err
    assert "line 1" not in err and "line 3" not in err
    assert ID_NUMBER[:-1] not in err
    assert "Traceback" not in err
    assert key_count(store_env) == 0


def test_import_of_a_missing_file(
    store_env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "registry", "import", str(tmp_path / "none.jsonl"))
    assert code != 0
    assert_one_error_line(err, "cannot read", "none.jsonl")


def test_import_help_documents_the_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["registry", "import", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for key in ('"sub"', '"status"', '"scheme"', '"region"', '"name"', '"id_number"', '"balance"'):
        assert key in out
    assert '"physical_card"' in out and "nothing is imported" in out


# -- institutions -----------------------------------------------------------------------------


def test_institution_put_get_and_disable(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "institutions",
        "put",
        "hosp-1",
        "--name",
        "协和医院",
        "--cards",
        "ss-ecard, mi-voucher",
    )
    assert code == 0, err
    assert json.loads(out) == {
        "id": "hosp-1",
        "name": "协和医院",
        "cards": ["mi-voucher", "ss-ecard"],
        "enabled": True,
    }
    code, out, err = run(
        capsys,
        "institutions",
        "put",
        "hosp-1",
        "--name",
        "协和医院",
        "--cards",
        "mi-voucher",
        "--disable",
    )
    assert code == 0, err
    code, out, err = run(capsys, "institutions", "get", "hosp-1")
    assert code == 0, err
    assert json.loads(out) == {
        "id": "hosp-1",
        "name": "协和医院",
        "cards": ["mi-voucher"],
        "enabled": False,
    }


def test_institution_with_unknown_card_type(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "institutions", "put", "hosp-2", "--name", "x", "--cards", "alipay")
    assert code != 0
    assert_one_error_line(err, "cards must be one of")
    assert key_count(store_env) == 0


def test_get_unknown_institution_exits_1(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "institutions", "get", "nowhere")
    assert code == 1
    assert_one_error_line(err, "no institution 'nowhere'")


# -- scanners ---------------------------------------------------------------------------------


def test_scanner_credential_authenticates_until_revoked(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(capsys, "institutions", "put", "hosp-1", "--name", "H", "--cards", "mi-voucher")[0] == 0
    )
    code, out, err = run(capsys, "scanners", "add", "--institution", "hosp-1")
    assert code == 0, err
    credential = out.strip()
    assert len(out.splitlines()) == 1
    assert "cannot be shown again" in err and credential not in err
    scanner, inst = authenticate(store_env, credential)
    assert scanner.institution == "hosp-1" and not scanner.revoked
    assert inst is not None and inst.id == "hosp-1"
    assert credential.split(".")[1].encode() not in b"".join(stored_values(store_env))

    code, out, err = run(capsys, "scanners", "revoke", scanner.id)
    assert code == 0, err
    assert "revoked" in out
    with pytest.raises(AuthError) as exc:
        authenticate(store_env, credential)
    assert exc.value.status == 403 and exc.value.code == "scanner_revoked"

    code, out, _ = run(capsys, "scanners", "revoke", scanner.id)  # again: harmless
    assert code == 0 and "already revoked" in out


def test_scanner_for_unknown_institution_is_refused(
    store_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "scanners", "add", "--institution", "hosp-x")
    assert code != 0 and out == ""
    assert_one_error_line(err, "no institution 'hosp-x'")
    assert key_count(store_env) == 0


def test_revoke_unknown_scanner_exits_1(store_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scanners", "revoke", "s-000000000000")
    assert code == 1
    assert_one_error_line(err, "no scanner 's-000000000000'")


# -- where the store is named: one loader with `verifier serve` ----------------------------


PUT_H1 = (
    "registry",
    "put",
    "h-1",
    "--status",
    "active",
    "--scheme",
    "employee",
    "--region",
    "110105",
)


@pytest.fixture
def no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VERIFIER_STORE", "VERIFIER_ALLOW_EVICTION", "VERIFIER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_store_env")
def test_the_config_file_names_the_store(
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Regression: the admin commands read VERIFIER_STORE themselves and ignored
    # VERIFIER_CONFIG, so they wrote to the default store instead of the configured one.
    config = tmp_path / "verifier.toml"
    # The file `verifier serve` reads: its service-only keys are no error here.
    config.write_text(f'store = "{redis_url}"\ntrust_list = "trust.paseto"\nworkers = 2\n')
    monkeypatch.setenv("VERIFIER_CONFIG", str(config))
    code, _, err = run(capsys, *PUT_H1)
    assert code == 0, err
    assert read_back(redis_url, "h-1") is not None


@pytest.mark.usefixtures("no_store_env")
def test_store_and_config_flags(
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "verifier.toml"
    config.write_text(f'store = "{redis_url}"\n')
    code, _, err = run(capsys, *PUT_H1, "--config", str(config))
    assert code == 0, err
    monkeypatch.setenv("VERIFIER_STORE", closed_port_url())  # the flag beats the variable
    code, out, err = run(capsys, "registry", "get", "h-1", "--store", redis_url)
    assert code == 0, err
    assert json.loads(out)["sub"] == "h-1"


@pytest.mark.usefixtures("no_store_env")
def test_memory_store_in_the_config_file_is_refused_naming_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "verifier.toml"
    config.write_text('store = "memory://"\n')
    code, out, err = run(capsys, "scanners", "revoke", "s-000000000000", "--config", str(config))
    assert code != 0 and out == ""
    assert_one_error_line(err, f"config file {config}, key store", "memory://", "verifier demo")


# -- refusals and failures --------------------------------------------------------------------

COMMANDS = [
    ["registry", "get", "h-1"],
    ["registry", "put", "h-1", "--status", "active", "--scheme", "employee", "--region", "110105"],
    ["institutions", "get", "hosp-1"],
    ["institutions", "put", "hosp-1", "--name", "H", "--cards", "mi-voucher"],
    ["scanners", "add", "--institution", "hosp-1"],
    ["scanners", "revoke", "s-000000000000"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_memory_store_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFIER_STORE", "memory://")
    code, out, err = run(capsys, *argv)
    assert code != 0 and out == ""
    assert_one_error_line(err, "memory://", "Redis", "verifier demo")


def test_memory_store_refused_for_import(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VERIFIER_STORE", "memory://")
    path = tmp_path / "one.jsonl"
    path.write_text(jsonl(holder_line("h-1")), encoding="utf-8")
    code, out, err = run(capsys, "registry", "import", str(path))
    assert code != 0 and out == ""
    assert_one_error_line(err, "memory://")


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_closed_port_gives_one_clean_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFIER_STORE", closed_port_url())
    code, out, err = run(capsys, *argv)
    assert code != 0 and out == ""
    assert_one_error_line(err, "the store at redis:// did not answer")
    assert PASSWORD not in err


def test_paused_redis_gives_one_clean_line(
    store_env: str, redis_server: RedisServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(jsonl(holder_line("h-1")), encoding="utf-8")
    redis_server.pause()
    try:
        code, out, err = run(capsys, "registry", "import", str(path))
    finally:
        redis_server.resume()
    assert code != 0 and out == ""
    assert_one_error_line(err, "the store at redis:// did not answer", "no reply within")


def test_store_down_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "VERIFIER_STORE": closed_port_url()}
    proc = subprocess.run(
        [sys.executable, "-m", "verifier.cli.main", "scanners", "revoke", "s-000000000000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert_one_error_line(proc.stderr, "the store at redis:// did not answer")
    assert PASSWORD not in proc.stderr


def test_bad_allow_eviction_setting(
    store_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFIER_ALLOW_EVICTION", "maybe")
    code, _, err = run(capsys, "registry", "get", "h-1")
    assert code != 0
    assert_one_error_line(err, "VERIFIER_ALLOW_EVICTION")


@pytest.mark.parametrize(
    "argv",
    [
        ["registry"],
        ["registry", "put"],
        ["registry", "get"],
        ["institutions"],
        ["institutions", "put"],
        ["institutions", "get"],
        ["scanners"],
        ["scanners", "add"],
        ["scanners", "revoke"],
    ],
    ids=" ".join,
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: verifier " + " ".join(argv))
    assert "VERIFIER_STORE" in out


# -- the progress bar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "expected"),
    [
        (0, 10, "[..........] 0/10   0%"),
        (5, 10, "[#####.....] 5/10  50%"),
        (10, 10, "[##########] 10/10 100%"),
        (0, 0, "[##########] 0/0 100%"),  # nothing to do is done
    ],
)
def test_render_bar(done: int, total: int, expected: str) -> None:
    assert render_bar(done, total, width=10) == expected


def test_progress_on_a_terminal_redraws_in_place() -> None:
    stream = io.StringIO()
    progress = Progress(3000, stream, tty=True)
    for done in (1000, 2000, 3000):
        progress.update(done)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("3000/3000 100%\n") and text.count("\n") == 1


def test_progress_elsewhere_writes_the_first_chunk_then_a_line_per_tenth() -> None:
    stream = io.StringIO()
    progress = Progress(100_000, stream, tty=False)
    for done in range(1000, 100_001, 1000):
        progress.update(done)
    progress.finish()
    lines = [line.split()[-2] for line in stream.getvalue().splitlines()]
    assert lines == ["1000/100000", *(f"{k * 10_000}/100000" for k in range(1, 11))]
